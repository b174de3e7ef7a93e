"""The results store's one opener: every kind's tables in one file, one schema version migrated
forward on open, one error class for anything that is not a results store, read-only row
counts that create nothing, and two processes writing one file at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pqcompress.results import (
    SCHEMA_VERSION,
    ResultsStore,
    SearchStore,
    ServingStore,
    StoreError,
    open_store,
    table_rows,
)
from pqcompress.results.schema import DDL, SEARCH_SQL


def _tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def test_a_new_store_holds_every_kind_and_the_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.db"
    assert table_rows(path, "runs") == 0 and not path.exists()  # nothing created
    db = open_store(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    db.close()
    assert {"meta", "runs", "epochs", "search_evals", "serving_runs"} <= _tables(path)
    with SearchStore(path) as s:
        s.add_study("st", {"a": 1}, {"accuracy": 0.5})
    with ServingStore(path) as v:
        v.record_bench("b", {"x": 1}, {"cpu": "?"})
    assert table_rows(path, "search_studies") == 1 and table_rows(path, "serving_benches") == 1
    assert table_rows(path, "missing") == 0


def test_version_1_files_migrate_and_keep_their_rows(tmp_path: Path) -> None:
    """Today's two shapes: a sweep store (meta, version 1) and a search-only store (no meta)."""
    sweep = tmp_path / "sweep.db"
    con = sqlite3.connect(sweep)
    for statement in DDL[:4]:  # meta, runs, epochs, index: the version-1 sweep schema
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO runs (run_id, sweep, point_index, params, config, status) "
        "VALUES ('r1', 'g', 0, '{}', '{}', 'pending')"
    )
    con.commit()
    con.close()
    with ResultsStore(sweep) as store:
        assert store.meta()["schema_version"] == str(SCHEMA_VERSION)
        assert [r["run_id"] for r in store.runs()] == ["r1"]
    assert "search_evals" in _tables(sweep)

    search = tmp_path / "search.db"
    con = sqlite3.connect(search)
    con.executescript(SEARCH_SQL)
    con.execute("INSERT INTO search_studies VALUES ('st', '{}', '{\"accuracy\": 1}', 0)")
    con.commit()
    con.close()
    with SearchStore(search, readonly=True) as ro:  # read-only: nothing changes
        assert ro.studies() == ["st"]
    assert "meta" not in _tables(search)
    with SearchStore(search) as s:
        assert s.study("st") == {"spec": {}, "reference": {"accuracy": 1}}
    assert "meta" in _tables(search) and "runs" in _tables(search)


def test_what_is_not_a_results_store_is_one_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database, just text that is long enough to have a header" * 4)
    assert table_rows(text, "runs") == 0
    with pytest.raises(StoreError, match="is not a SQLite database; refusing to overwrite"):
        SearchStore(text)
    foreign = tmp_path / "other.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    with pytest.raises(StoreError, match=r"not a pqcompress results store \(tables: customers\)"):
        ServingStore(foreign)
    assert _tables(foreign) == {"customers"}  # untouched
    newer = tmp_path / "newer.db"
    with ResultsStore(newer) as store:
        store.set_meta({"schema_version": str(SCHEMA_VERSION + 1)})
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        open_store(newer)
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "absent.db", readonly=True)
    with SearchStore(tmp_path / "ro.db") as s:
        pass
    with (
        SearchStore(tmp_path / "ro.db", readonly=True) as s,
        pytest.raises(StoreError, match="read-only"),
    ):
        s.add_study("x", {}, {})


WRITER = """
import sys
from pqcompress.results import SearchStore
with SearchStore(sys.argv[1]) as s:
    for i in range(200):
        s.add_evaluation("st", {"algorithm": sys.argv[2], "repeat": 0, "key": str(i), "seq": i,
            "iteration": 0, "variables": {}, "objectives": {}, "constraints": {},
            "feasible": True, "wall_s": 0.0})
"""


def test_two_processes_write_one_store_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    open_store(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    with SearchStore(path, readonly=True) as s:
        rows = s.all_evaluations("st")
    assert len(rows) == 400
    assert {r["algorithm"] for r in rows} == {"a", "b"}
