"""Options every command spells the same way (docs/cli.md): the one home of ``-o`` and of
``--model`` as a user's factory."""

from __future__ import annotations

import argparse
from typing import Any


def add_output(p: argparse.ArgumentParser, *, dest: str = "out", **kwargs: Any) -> None:
    """``-o`` with its aliases ``--out`` and ``--output``: where a command writes."""
    p.add_argument("-o", "--out", "--output", dest=dest, **kwargs)


FACTORY_HELP = "your own model's factory, for a .pqz saved from it (a file never imports code)"


def add_factory(p: argparse.ArgumentParser, *, help: str = FACTORY_HELP) -> None:
    """``--model PACKAGE.MODULE:FACTORY`` (dest ``factory``): the user's own model, for
    commands whose positional argument is the model file."""
    p.add_argument(
        "--model", dest="factory", default=None, metavar="PACKAGE.MODULE:FACTORY", help=help
    )
