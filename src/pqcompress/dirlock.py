"""One writer per directory: an exclusive advisory file lock (``flock``) held while a process
writes a run directory or runs a sweep point.

The lock lives in a small file inside the directory (``.lock`` for a run's writer, ``.claim``
for a sweep driver's claim of a point). The kernel drops it when the holder exits, however it
exits (``kill -9`` included), so a lock is never left behind; the file only records who held it
last, for the message a second writer gets. Locks are re-entrant within one process (the CLI's
``train`` and the Trainer it calls take the same lock). Where ``fcntl`` is missing (Windows)
locking is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pqcompress.errors import BusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RUN_LOCK = ".lock"  # the process writing a run directory (train, a sweep worker)
POINT_CLAIM = ".claim"  # the sweep driver that runs a point

_held: dict[str, list[int]] = {}  # lock path -> [fd, depth] of the locks this process holds
_guard = threading.Lock()


def _key(directory: Path, name: str) -> str:
    return str(directory.resolve() / name)


def holder(directory: str | Path, name: str = RUN_LOCK) -> str | None:
    """Who holds the lock ``name`` of ``directory`` (the line its holder wrote), or None when
    nobody does: this process's own locks count as held."""
    path = Path(directory) / name
    if _key(Path(directory), name) in _held:
        return _describe_self()
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            return text or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def acquire(directory: str | Path, name: str = RUN_LOCK, *, what: str = "run directory") -> bool:
    """Take the lock ``name`` in ``directory`` (created if needed) without waiting.

    Returns True when this call created ``directory``. BusyError naming the holder when another
    process holds it.
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    key = _key(directory, name)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return created
        if fcntl is None:  # pragma: no cover - Windows
            _held[key] = [-1, 1]
            return created
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            who = holder(directory, name) or "another process"
            raise BusyError(
                f"{what} {directory} is in use by {who}; wait for it to finish or stop it "
                "(only one process may write it at a time)"
            ) from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, (_describe_self() + "\n").encode("utf-8"))
        _held[key] = [fd, 1]
    return created


def release(directory: str | Path, name: str = RUN_LOCK, *, remove_dir: bool = False) -> None:
    """Drop one level of the lock; at the last one unlock it. With ``remove_dir`` (the
    directory was created only to hold the lock) the directory is removed when nothing else
    was written into it."""
    directory = Path(directory)
    key = _key(directory, name)
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        fd = entry[0]
        if remove_dir:
            with contextlib.suppress(OSError):
                if [p.name for p in directory.iterdir()] == [name]:
                    os.unlink(key)
                    directory.rmdir()
        if fd >= 0 and fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextlib.contextmanager
def locked(
    directory: str | Path, name: str = RUN_LOCK, *, what: str = "run directory"
) -> Iterator[None]:
    """Hold the lock for the block; a directory created for it alone is removed afterwards."""
    created = acquire(directory, name, what=what)
    try:
        yield
    finally:
        release(directory, name, remove_dir=created)


def _describe_self() -> str:
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:4]) if sys.argv else "python"
    return f"pid {os.getpid()} on {socket.gethostname()} ({command}, since {since})"
