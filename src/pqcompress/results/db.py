"""The results store's one opener: a SQLite file in WAL mode with a busy timeout (so several
processes can write), one schema version for every kind of result (``results.schema``), migrated
forward on open, and one error class. Every kind's store (runs, search, serving) is a ``Store``.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pqcompress.errors import PQCError
from pqcompress.results.schema import DDL, KIND_TABLES, MIGRATIONS, SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(PQCError):
    """The results store cannot be opened or used (not SQLite, newer schema, foreign database,
    a lock held past the busy timeout, a full disk)."""


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
    elif "full" in low or ("i/o" in low and _disk_full(path)):
        why = f"the disk is full ({text}); free space, then rerun the same command"
    else:
        why = text
    return f"results store '{path}': {why}; the last change was not recorded"


def _disk_full(path: str | Path) -> bool:
    """Whether the store's folder has (next to) no free space: SQLite reports a write into the
    WAL's shared memory on a full disk as a disk I/O error, not as a full disk."""
    try:
        return shutil.disk_usage(Path(path).parent).free < 64 * 1024
    except OSError:
        return False


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


def utc_now() -> str:
    """ISO-8601 UTC timestamp with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_store(path: str | Path, *, readonly: bool = False) -> GuardedConnection:
    """Open the results store at ``path``: creating it (and its folder) if needed, every kind's
    tables applied and older schema versions migrated, in WAL mode, rows as ``sqlite3.Row``,
    autocommit (writers use :meth:`Store.transaction`). ``readonly`` opens an existing store
    without creating or changing anything. Anything else than a results store (a folder, a
    text file, another program's database, a newer schema) is one StoreError."""
    path = Path(path)
    _check_file(path, readonly)
    if not readonly:
        path.parent.mkdir(parents=True, exist_ok=True)
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    try:
        db = sqlite3.connect(
            uri, timeout=BUSY_TIMEOUT_S, factory=GuardedConnection, uri=True, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results store '{path}': {exc}") from None
    assert isinstance(db, GuardedConnection)
    db.store_path, db.store_error, db.wait_s = str(path), StoreError, BUSY_TIMEOUT_S
    db.row_factory = sqlite3.Row
    try:
        _prepare(db, path, readonly)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"'{path}' is not a usable SQLite database: {exc}") from None
    except StoreError:
        db.close()
        raise
    return db


def _prepare(db: GuardedConnection, path: Path, readonly: bool) -> None:
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = _stored_version(db, tables, path)
    if readonly:
        if not tables:
            raise StoreError(f"'{path}' is an empty database, not a results store")
        return
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            for statement in MIGRATIONS.get(step, ()):
                db.execute(statement)
        for statement in DDL:
            db.execute(statement)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", (utc_now(),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _stored_version(db: GuardedConnection, tables: set[str], path: Path) -> int | None:
    """The file's schema version (None: an empty file); one StoreError for a database that is
    not a results store or was written by a newer pqcompress."""
    if "meta" not in tables:
        if not tables:
            return None
        if tables <= KIND_TABLES:  # search or serving tables written before the shared meta
            return 1
        raise StoreError(
            f"'{path}' is a SQLite database but not a pqcompress results store "
            f"(tables: {', '.join(sorted(tables))}); refusing to change it — choose another --store"
        )
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise StoreError(
            f"'{path}' has a meta table without schema_version; it is not a pqcompress results store"
        )
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"results store '{path}' has schema version {version}, newer than this "
            f"pqcompress understands ({SCHEMA_VERSION}); upgrade pqcompress to use it"
        )
    return version


def _check_file(path: Path, readonly: bool) -> None:
    if path.is_dir():
        raise StoreError(
            f"--store '{path}' is a directory; give a database file such as results.db"
        )
    if not path.exists():
        if readonly:
            raise StoreError(f"results store '{path}' does not exist")
        return
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise StoreError(
            f"'{path}' exists and is not a SQLite database; refusing to overwrite it — "
            "choose another --store path"
        )


class Store:
    """One results file, opened once (:func:`open_store`): the base of every kind's store.
    Every write is one short ``BEGIN IMMEDIATE`` transaction (:meth:`transaction`), so a
    process killed at any moment leaves the file at a transaction boundary, and two processes
    writing at once wait for each other (up to the busy timeout) instead of failing."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.db = open_store(self.path, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"results store '{self.path}' was opened read-only")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


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
