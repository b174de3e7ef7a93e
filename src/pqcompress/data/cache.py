"""Decoded datasets cached as uint8 .npy files, keyed by a fingerprint of the source, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "PQCOMPRESS_CACHE"
FORMAT_VERSION = 1


def cache_root() -> Path:
    """$PQCOMPRESS_CACHE, else ~/.cache/pqcompress."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pqcompress"


def fingerprint(paths: Iterable[Path], *extra: object) -> str:
    """Hash of each path's absolute name, size and mtime, plus ``extra`` (e.g. options)."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for path in paths:
        st = path.stat()
        digest.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for item in extra:
        digest.update(f"{item!r}\n".encode())
    return digest.hexdigest()[:24]


def load_cached(dataset: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata stored under ``key``, or None when absent or unreadable."""
    folder = cache_root() / dataset / key
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = {
            name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, meta


def save_cached(
    dataset: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path | None:
    """Store ``arrays`` and ``meta`` under ``key`` (temp folder + os.replace, so readers never
    see a half-written entry); older entries with the same ``meta["source"]`` are removed.
    Returns the folder, or None (with a warning) when the cache is not writable."""
    parent = cache_root() / dataset
    final = parent / key
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=parent))
        try:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            record = {**meta, "arrays": sorted(arrays), "format_version": FORMAT_VERSION}
            (tmp / "meta.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
            _move_into_place(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except OSError as exc:
        warnings.warn(f"could not write the dataset cache under {parent}: {exc}", stacklevel=3)
        return None
    _remove_stale(parent, keep=key, source=meta.get("source"))
    return final


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` (damaged, or written by a concurrent
    build of the same source) is first renamed aside, so readers never see a partial entry."""
    try:
        os.replace(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
    os.replace(final, aside / "entry")
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale(parent: Path, *, keep: str, source: Any) -> None:
    if source is None:
        return
    for entry in parent.iterdir():
        if entry.name == keep or entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            other = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if other.get("source") == source:
            shutil.rmtree(entry, ignore_errors=True)
