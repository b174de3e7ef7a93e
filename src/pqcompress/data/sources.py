"""Where dataset files are looked for: ``cfg.root``, $PQCOMPRESS_DATA_DIR, then the per-user
data folder."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "PQCOMPRESS_DATA_DIR"


def user_data_dir() -> Path:
    """The per-user default: ``$XDG_DATA_HOME/pqcompress/datasets``, where
    ``$XDG_DATA_HOME`` defaults to ``~/.local/share``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join("~", ".local", "share")
    return Path(base).expanduser() / "pqcompress" / "datasets"


def search_roots(root: str | os.PathLike[str] | None) -> list[Path]:
    """Folders (or files) to look in, in order.

    An explicit ``root`` is the only place searched; otherwise $PQCOMPRESS_DATA_DIR, then the
    per-user folder (:func:`user_data_dir`). Duplicates are dropped; places that do not exist
    are kept (callers skip them, and name them in the error when nothing is found).
    """
    if root is not None:
        return [Path(root).expanduser()]
    candidates: list[Path] = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        candidates.append(Path(env).expanduser())
    candidates.append(user_data_dir())
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in candidates:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def describe(paths: list[Path]) -> str:
    """'a, b (missing), ...' for error messages."""
    return ", ".join(f"{p}" + ("" if p.exists() else " (missing)") for p in paths)
