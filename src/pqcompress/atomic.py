"""Crash-safe file writes: temp file + fsync + os.replace, and fsynced appends."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pqcompress.errors import StorageError

TEMP_MARK = ".tmp-"
NAME_MAX = 255  # bytes of one path component on common file systems
FULL_BELOW_BYTES = 1 << 20  # a failed write on a file system with less free space: disk full


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


def temp_path(path: Path) -> Path:
    """The temp file beside ``path`` that an atomic write goes through: ``<name>.tmp-<pid>``,
    with the name shortened so that it fits any valid file name (255 bytes)."""
    suffix = f"{TEMP_MARK}{os.getpid()}"
    name = path.name
    room = NAME_MAX - len(suffix.encode())
    if len(name.encode("utf-8", "surrogateescape")) > room:
        name = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return path.with_name(name + suffix)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` via ``write(fileobj)`` into a temp file beside it, fsync, then os.replace.

    Readers see either the old file or the complete new one; a crash leaves at most a
    ``<name>.tmp-<pid>`` file behind, which nothing reads. A write that fails (a full disk,
    no permission) removes the temp file and raises StorageError naming ``path``: the old
    file is left as it was.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError(write_failure(path, exc)) from None
        raise
    fsync_dir(path.parent)


def write_failure(path: Path, exc: BaseException) -> str:
    """One line for a failed write of ``path``: the reason, and that the old file is kept."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = " ".join(str(reason).split())[:200]
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or _nearly_full(
        path.parent
    ):
        reason = f"{reason} (the disk is full)"
    kept = "the earlier file is kept as it was" if path.exists() else "nothing was written"
    return f"cannot write '{path}': {reason}; {kept}"


def _nearly_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < FULL_BELOW_BYTES
    except OSError:
        return False


def write_text_atomic(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")

    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    atomic_write(path, write)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def append_line_synced(path: str | Path, line: str) -> None:
    """Append one text line and fsync it before returning (StorageError when it cannot)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StorageError(
            write_failure(Path(path), exc).replace(
                "the earlier file is kept as it was", "its earlier lines are kept"
            )
        ) from None


def stale_temp_files(directory: str | Path) -> Iterator[Path]:
    """Temp files left by an interrupted ``atomic_write`` in ``directory``."""
    directory = Path(directory)
    if directory.is_dir():
        yield from (p for p in directory.iterdir() if TEMP_MARK in p.name and p.is_file())
