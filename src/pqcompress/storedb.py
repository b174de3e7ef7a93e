"""The results store's SQLite file as the search and serving tables open it (the sweep
tables have their own store class): one way to open it with a schema, one way to ask
read-only whether a table holds rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_tables(path: str | Path, schema: str, error: type[Exception]) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` in WAL mode with ``schema`` applied and
    rows as ``sqlite3.Row``; ``error`` naming the file when it is not a usable SQLite store."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(p), timeout=60)
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
