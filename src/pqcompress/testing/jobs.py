"""Small executor jobs for the tests of ``pqcompress.execute``: importable module-level
functions, so that worker processes and Ray actors receive them by reference."""

from __future__ import annotations

import os
from typing import Any

_STATE: dict[str, Any] = {}


def remember(tag: str) -> None:
    """A job's setup: counts how often it ran in this process."""
    _STATE["tag"] = tag
    _STATE["setups"] = _STATE.get("setups", 0) + 1


def describe(item: Any) -> dict[str, Any]:
    """The item squared, with the worker's pid, its setup tag and how often setup ran there.
    An item ``"die"`` ends the worker process at once (as a crash or an OOM kill would)."""
    if item == "die":
        os._exit(3)
    return {
        "value": item * item,
        "pid": os.getpid(),
        "tag": _STATE.get("tag"),
        "setups": _STATE.get("setups", 0),
    }


def failed(item: Any, why: str) -> dict[str, Any]:
    """A job's failure outcome: the item and why its worker died."""
    return {"failed": item, "why": why}
