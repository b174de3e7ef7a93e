"""Options every command spells the same way (docs/cli.md): the one home of ``-o``."""

from __future__ import annotations

import argparse
from typing import Any


def add_output(p: argparse.ArgumentParser, *, dest: str = "out", **kwargs: Any) -> None:
    """``-o`` with its aliases ``--out`` and ``--output``: where a command writes."""
    p.add_argument("-o", "--out", "--output", dest=dest, **kwargs)
