"""Crash-safe file writes: temp file + fsync + os.replace, and fsynced appends."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_MARK = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` via ``write(fileobj)`` into a temp file beside it, fsync, then os.replace.

    Readers see either the old file or the complete new one; a crash leaves at most a
    ``<name>.tmp-<pid>`` file behind, which nothing reads.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")

    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    atomic_write(path, write)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def append_line_synced(path: str | Path, line: str) -> None:
    """Append one text line and fsync it before returning."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def stale_temp_files(directory: str | Path) -> Iterator[Path]:
    """Temp files left by an interrupted ``atomic_write`` in ``directory``."""
    directory = Path(directory)
    if directory.is_dir():
        yield from (p for p in directory.iterdir() if TEMP_MARK in p.name and p.is_file())
