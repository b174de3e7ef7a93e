"""The one fault-injection point of the package: tests stop a process at a named place.

Kill-and-resume tests must stop a training or a search at an exact moment without relying on
timing. With ``PQCOMPRESS_TEST_HOLD="POINT:KEY:FILE"`` in the environment, the process that
reaches :func:`hold` with that ``point`` and ``key`` writes a marker (``marker``, else
``FILE.held``) and waits while ``FILE`` exists (at most ``MAX_HOLD_S``), so the test can kill
or signal it there and then. The points:

- ``epoch``, key ``RUN_DIR_NAME@EPOCH``: the Trainer, after checkpoint.pt of that epoch is
  written and before its metrics line (marker ``RUN_DIR/.held``);
- ``evaluations``, key ``N``: a search, once N evaluations are stored.

Unset (always, outside tests), :func:`hold` costs one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "PQCOMPRESS_TEST_HOLD"
MAX_HOLD_S = 300.0


def spec(point: str, key: str, file: str | Path) -> str:
    """The environment value that holds ``point``/``key`` while ``file`` exists."""
    return f"{point}:{key}:{file}"


def hold(point: str, key: str, marker: Path | None = None) -> None:
    """Wait here when the environment asks for this ``point`` and ``key`` (see the module)."""
    value = os.environ.get(ENV)
    if not value:
        return
    want_point, _, rest = value.partition(":")
    want_key, _, file = rest.partition(":")
    if want_point != point or want_key != key or not file:
        return
    (marker if marker is not None else Path(file + ".held")).write_text(key, encoding="utf-8")
    deadline = time.monotonic() + MAX_HOLD_S
    while Path(file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
