"""ServingStore: the serving benches in the results store: one row per (bench, variant,
profile, repeat) load run and one per start-to-ready measurement (tables ``serving_*``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pqcompress.results.db import Store, StoreError, table_rows


class ServingStore(Store):
    """Read and write a bench's rows; every write is its own committed transaction."""

    def __enter__(self) -> ServingStore:
        return self

    def record_bench(self, bench: str, spec: dict[str, Any], machine: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
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
        with self.transaction() as db:
            db.execute(
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
        with self.transaction() as db:
            db.execute(
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
            raise StoreError(f"no serving bench '{bench}' in {self.path}")
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
