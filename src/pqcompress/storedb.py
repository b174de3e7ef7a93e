"""The results store's SQLite file as the search and serving tables open it (the sweep
tables have their own store class): one way to open it with a schema, one way to ask
read-only whether a table holds rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write lock


def store_failure(path: str | Path, exc: sqlite3.Error, wait_s: float = BUSY_TIMEOUT_S) -> str:
    """One line for a store operation SQLite refused: a lock held past the busy timeout, a
    full disk, or anything else, naming the file and that the last change was not recorded."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        why = (
            f"another process has held its write lock for more than {wait_s:g} s ({text}); "
            "wait for it, then rerun the same command"
        )
    elif "full" in low:
        why = f"the disk is full ({text}); free space, then rerun the same command"
    else:
        why = text
    return f"results store '{path}': {why}; the last change was not recorded"


class GuardedConnection(sqlite3.Connection):
    """A connection whose operational failures (locked past the timeout, disk full, I/O)
    raise the store's own error class with :func:`store_failure`'s line, not a traceback."""

    store_path: str = "?"
    store_error: type[Exception] = RuntimeError
    wait_s: float = BUSY_TIMEOUT_S

    def _fail(self, exc: sqlite3.Error) -> Exception:
        return self.store_error(store_failure(self.store_path, exc, self.wait_s))

    def execute(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args)
        except sqlite3.OperationalError as exc:
            raise self._fail(exc) from None

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args)
        except sqlite3.OperationalError as exc:
            raise self._fail(exc) from None

    def executescript(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().executescript(*args)
        except sqlite3.OperationalError as exc:
            raise self._fail(exc) from None

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.OperationalError as exc:
            raise self._fail(exc) from None

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return super().__exit__(*exc_info)
        except sqlite3.OperationalError as exc:
            raise self._fail(exc) from None


def connect(
    target: str, path: str | Path, error: type[Exception], **kwargs: Any
) -> GuardedConnection:
    """``sqlite3.connect(target)`` as a :class:`GuardedConnection` raising ``error``, with the
    busy timeout set (WAL mode is up to the caller: a read-only open cannot set it)."""
    db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, factory=GuardedConnection, **kwargs)
    assert isinstance(db, GuardedConnection)
    db.store_path, db.store_error, db.wait_s = str(path), error, BUSY_TIMEOUT_S
    return db


def open_tables(path: str | Path, schema: str, error: type[Exception]) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` in WAL mode with ``schema`` applied and
    rows as ``sqlite3.Row``; ``error`` naming the file when it is not a usable SQLite store."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = connect(str(p), p, error)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        raise error(f"{p} is not a usable results store (SQLite): {exc}") from None
    db.row_factory = sqlite3.Row
    return db


def table_rows(path: str | Path, table: str) -> int:
    """Rows of ``table`` in the store at ``path``, read-only; 0 when the file, the table or
    SQLite itself is missing (nothing is created)."""
    p = Path(path)
    if not p.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
            ).fetchone()
            if found is None:
                return 0
            return int(db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return 0
