"""storedb: the results store opened with a schema, and read-only row counts that create
nothing."""

from __future__ import annotations

import pytest

from pqcompress.errors import ConfigError
from pqcompress.storedb import open_tables, table_rows

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER);"


def test_open_tables_and_count_rows(tmp_path):
    path = tmp_path / "sub" / "results.db"
    assert table_rows(path, "t") == 0 and not path.exists()  # nothing created
    db = open_tables(path, SCHEMA, ConfigError)
    with db:
        db.executemany("INSERT INTO t VALUES (?, ?)", [("a", 1), ("b", 2)])
    assert db.execute("SELECT v FROM t WHERE k='b'").fetchone()["v"] == 2  # rows by name
    db.close()
    assert table_rows(path, "t") == 2
    assert table_rows(path, "missing") == 0


def test_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("not a database, just text that is long enough to have a header" * 4)
    assert table_rows(bad, "t") == 0
    with pytest.raises(ConfigError, match="is not a usable results store"):
        open_tables(bad, SCHEMA, ConfigError)
