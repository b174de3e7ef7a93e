"""The serving tables of a results store (SQLite, shared with sweeps and searches): one row
per (bench, variant, profile, repeat) load run and one per start-to-ready measurement."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pqcompress.loadtest.errors import LoadTestError
from pqcompress.storedb import open_tables, table_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS serving_benches (
    bench TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    machine TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS serving_runs (
    bench TEXT NOT NULL,
    variant TEXT NOT NULL,
    profile TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    summary TEXT NOT NULL,
    history TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (bench, variant, profile, repeat)
);
CREATE TABLE IF NOT EXISTS serving_ready (
    bench TEXT NOT NULL,
    variant TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    ready_s REAL NOT NULL,
    rss_ready_mib REAL,
    file_bytes INTEGER,
    finished_at REAL NOT NULL,
    PRIMARY KEY (bench, variant, repeat)
);
"""


class ServingStore:
    """Read and write a bench's rows; every write is its own committed transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = open_tables(self.path, SCHEMA, LoadTestError)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ServingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_bench(self, bench: str, spec: dict[str, Any], machine: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO serving_benches VALUES (?, ?, ?, ?) ON CONFLICT(bench) DO UPDATE "
                "SET spec = excluded.spec, machine = excluded.machine",
                (bench, json.dumps(spec), json.dumps(machine), time.time()),
            )

    def has_run(self, bench: str, variant: str, profile: str, repeat: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM serving_runs WHERE bench=? AND variant=? AND profile=? AND repeat=?",
            (bench, variant, profile, repeat),
        ).fetchone()
        return row is not None

    def ready_count(self, bench: str, variant: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM serving_ready WHERE bench=? AND variant=?", (bench, variant)
        ).fetchone()
        return int(row[0])

    def add_run(
        self,
        bench: str,
        variant: str,
        profile: str,
        repeat: int,
        summary: dict[str, Any],
        history: list[dict[str, Any]],
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO serving_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    bench, variant, profile, repeat, json.dumps(summary), json.dumps(history),
                    time.time(),
                ),
            )  # fmt: skip

    def add_ready(
        self,
        bench: str,
        variant: str,
        repeat: int,
        ready_s: float,
        rss_ready_mib: float | None,
        file_bytes: int | None,
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO serving_ready VALUES (?, ?, ?, ?, ?, ?, ?)",
                (bench, variant, repeat, ready_s, rss_ready_mib, file_bytes, time.time()),
            )

    def benches(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT bench FROM serving_benches ORDER BY bench")]

    def spec(self, bench: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT spec, machine FROM serving_benches WHERE bench=?", (bench,)
        ).fetchone()
        if row is None:
            raise LoadTestError(f"no serving bench '{bench}' in {self.path}")
        return {"spec": json.loads(row["spec"]), "machine": json.loads(row["machine"])}

    def runs(self, bench: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT variant, profile, repeat, summary, history FROM serving_runs WHERE bench=? "
            "ORDER BY rowid",
            (bench,),
        ).fetchall()
        return [
            {
                "variant": r["variant"],
                "profile": r["profile"],
                "repeat": r["repeat"],
                "summary": json.loads(r["summary"]),
                "history": json.loads(r["history"]),
            }
            for r in rows
        ]

    def ready(self, bench: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT variant, repeat, ready_s, rss_ready_mib, file_bytes FROM serving_ready "
            "WHERE bench=? ORDER BY rowid",
            (bench,),
        ).fetchall()
        return [dict(r) for r in rows]


def has_serving_tables(path: str | Path) -> bool:
    """Whether a store file holds at least one serving bench (without creating tables)."""
    return table_rows(path, "serving_benches") > 0
