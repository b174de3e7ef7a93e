"""ResultsStore: schema and meta, point upserts, status changes, result rows, guarded opening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pqcompress.results.runs import is_complete
from pqcompress.results.schema import SCHEMA_VERSION
from pqcompress.sweep import ResultsStore, StoreError

POINT = {"run_id": "abc123", "point_index": 0, "params": {"alpha": 0.5}, "config": {"model": "x"}}


def finished_values(**extra):
    values = {
        "status": "completed",
        "best_epoch": 2,
        "best_test_acc": 0.9,
        "epochs_run": 2,
        "pqz_bytes": 1234,
        "float32_bytes": 4000,
        "result": {"status": "completed"},
    }
    values.update(extra)
    return values


def test_new_store_has_schema_meta_and_wal(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "sub" / "r.db") as store:
        meta = store.meta()
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert "T" in meta["created_at"]
        mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        store.set_meta({"sweep.x.spec": "model: cnn5\n"})
    with ResultsStore(tmp_path / "sub" / "r.db") as again:
        assert again.meta()["created_at"] == meta["created_at"]
        assert again.meta()["sweep.x.spec"] == "model: cnn5\n"


def test_point_lifecycle(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        store.add_points("grid", [POINT])
        row = store.run("abc123")
        assert row is not None and row["status"] == "pending" and row["attempts"] == 0
        assert row["params"] == {"alpha": 0.5} and row["config"] == {"model": "x"}
        store.mark_running("abc123", run_dir="/runs/abc123", executor="local")
        row = store.run("abc123")
        assert (row["status"], row["attempts"], row["run_dir"]) == ("running", 1, "/runs/abc123")
        assert not is_complete(row)
        epochs = [
            {"epoch": 1, "test_acc": 0.5, "lr": 0.1, "extra": "kept"},
            {"epoch": 2, "test_acc": float("nan")},
        ]
        store.record_run("abc123", finished_values(), epochs)
        row = store.run("abc123")
        assert is_complete(row) and row["result"] == {"status": "completed"}
        got = store.epochs("abc123")
        assert [e["epoch"] for e in got] == [1, 2]
        assert got[0]["metrics"]["extra"] == "kept" and got[1]["test_acc"] is None
        store.record_run("abc123", {}, epochs[:1])  # epochs are replaced, not appended
        assert len(store.epochs("abc123")) == 1
        store.record_run("abc123", {"host": "h"}, None)  # None keeps them
        assert len(store.epochs("abc123")) == 1 and store.run("abc123")["host"] == "h"
        store.add_points("grid2", [{**POINT, "point_index": 7}])  # keeps results, moves the row
        row = store.run("abc123")
        assert (row["status"], row["sweep"], row["point_index"]) == ("completed", "grid2", 7)
        assert store.sweeps() == ["grid2"]
        store.mark(["abc123"], "failed", error="Boom: x")
        assert store.runs(status="failed")[0]["error"] == "Boom: x"
        assert store.runs(sweep="nope") == []


def test_bad_writes_change_nothing(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        store.add_points("grid", [POINT])
        with pytest.raises(StoreError, match="unknown run column"):
            store.record_run("abc123", {"bogus": 1}, [{"epoch": 1}])
        with pytest.raises(StoreError, match="status 'done'"):
            store.mark(["abc123"], "done")
        with pytest.raises(sqlite3.IntegrityError):  # CHECK constraint: rolled back
            store.record_run("abc123", {"status": "weird"}, [{"epoch": 1}])
        assert store.run("abc123")["status"] == "pending" and store.epochs("abc123") == []


def test_refuses_files_that_are_not_stores(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("important notes\n", encoding="utf-8")
    with pytest.raises(StoreError, match="not a SQLite database; refusing to overwrite"):
        ResultsStore(text)
    assert text.read_text(encoding="utf-8") == "important notes\n"
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a pqcompress results store"):
        ResultsStore(other)
    with pytest.raises(StoreError, match="is a directory"):
        ResultsStore(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ResultsStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        ResultsStore(path)


def test_readonly(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ResultsStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    ResultsStore(tmp_path / "r.db").close()
    with ResultsStore(tmp_path / "r.db", readonly=True) as store:
        assert store.runs() == []
        with pytest.raises(StoreError, match="read-only"):
            store.add_points("grid", [POINT])
