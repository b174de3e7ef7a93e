"""ResultsStore: the runs of sweeps in the results store (runs, epochs, meta)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pqcompress.results.db import Store, StoreError, utc_now
from pqcompress.results.schema import FINISHED_STATUSES, RUN_STATUSES

JSON_RUN_COLUMNS = ("params", "config", "result")
RUN_COLUMNS = (
    "run_id",
    "sweep",
    "point_index",
    "params",
    "config",
    "status",
    "error",
    "attempts",
    "run_dir",
    "best_epoch",
    "best_test_acc",
    "train_acc_at_best",
    "density_at_best",
    "val_acc_at_best",
    "final_test_acc",
    "final_train_acc",
    "epochs_run",
    "pqz_path",
    "pqz_bytes",
    "float32_bytes",
    "wall_time_s",
    "started_at",
    "finished_at",
    "executor",
    "host",
    "result",
)
EPOCH_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_acc",
    "test_loss",
    "test_acc",
    "density",
    "lr",
    "epoch_time_s",
    "compress_time_s",
)
# Columns a finished run must have for a rerun to skip it.
COMPLETE_COLUMNS = ("best_epoch", "best_test_acc", "epochs_run", "pqz_bytes", "result")


def is_complete(row: Mapping[str, Any] | None) -> bool:
    """True when ``row`` is a finished run with every result column filled (rerun skips it)."""
    if row is None or row.get("status") not in FINISHED_STATUSES:
        return False
    return all(row.get(col) is not None for col in COMPLETE_COLUMNS)


class ResultsStore(Store):
    """The runs, epochs and metadata of any number of sweeps, in a results file (``Store``).

    Every write is one short ``BEGIN IMMEDIATE`` transaction. Two sweep processes may write
    the same file (each point is claimed by its run directory's lock); readers (``pqcompress
    report``) may read at the same time. ``readonly=True`` opens an existing store without
    creating or changing anything.
    """

    def __enter__(self) -> ResultsStore:
        return self

    # --------------------------------------------------------------------- meta

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, items: Mapping[str, str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, str(v)) for k, v in items.items()],
            )

    # ------------------------------------------------------------------- writes

    def add_points(self, sweep: str, points: Iterable[Mapping[str, Any]]) -> None:
        """Insert each point ``{run_id, point_index, params, config}`` as pending.

        An existing row keeps its status and results; its sweep, index and params are
        updated to this sweep's (a config shared by two sweeps is one run).
        """
        rows = [
            (
                p["run_id"],
                sweep,
                int(p["point_index"]),
                _dumps(p["params"]),
                _dumps(p["config"]),
            )
            for p in points
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO runs (run_id, sweep, point_index, params, config, status) "
                "VALUES (?, ?, ?, ?, ?, 'pending') ON CONFLICT(run_id) DO UPDATE SET "
                "sweep = excluded.sweep, point_index = excluded.point_index, "
                "params = excluded.params",
                rows,
            )

    def drop_unstarted(self, sweep: str, keep: Iterable[str]) -> int:
        """Delete the sweep's ``pending`` rows whose run id is not in ``keep`` (points dropped
        from the sweep file before they ever started); started or finished rows stay."""
        keep = set(keep)
        with self.transaction() as con:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE sweep = ? AND status = 'pending'", (sweep,)
            ).fetchall()
            gone = [r[0] for r in rows if r[0] not in keep]
            con.executemany("DELETE FROM runs WHERE run_id = ?", [(g,) for g in gone])
        return len(gone)

    def mark_running(self, run_id: str, *, run_dir: str, executor: str) -> None:
        """Status running, one more attempt, start time, error cleared."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, run_dir = ?, "
                "executor = ?, started_at = ?, finished_at = NULL, error = NULL "
                "WHERE run_id = ?",
                (run_dir, executor, utc_now(), run_id),
            )

    def mark(self, run_ids: Sequence[str], status: str, *, error: str | None = None) -> None:
        """Set the status (and error text) of runs: "failed", "interrupted" or "pending"."""
        if status not in RUN_STATUSES:
            raise StoreError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        finished = utc_now() if status == "failed" else None
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
                [(status, error, finished, rid) for rid in run_ids],
            )

    def record_run(
        self,
        run_id: str,
        values: Mapping[str, Any],
        epochs: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        """Write a run's result columns and replace its epoch rows (``None``: keep them), in
        one transaction."""
        unknown = set(values) - set(RUN_COLUMNS)
        if unknown:
            raise StoreError(f"unknown run column(s): {', '.join(sorted(unknown))}")
        cols = list(values)
        args = [_dumps(values[c]) if c in JSON_RUN_COLUMNS else _num(values[c]) for c in cols]
        with self.transaction() as db:
            if cols:
                db.execute(
                    f"UPDATE runs SET {', '.join(f'{c} = ?' for c in cols)} WHERE run_id = ?",
                    [*args, run_id],
                )
            if epochs is None:
                return
            db.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            db.executemany(
                f"INSERT INTO epochs (run_id, {', '.join(EPOCH_COLUMNS)}, metrics) "
                f"VALUES (?, {', '.join('?' for _ in EPOCH_COLUMNS)}, ?)",
                [
                    (run_id, *(_num(e.get(c)) for c in EPOCH_COLUMNS), _dumps(dict(e)))
                    for e in epochs
                ],
            )

    # -------------------------------------------------------------------- reads

    def runs(self, sweep: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Run rows as dicts (JSON columns decoded), ordered by sweep and point index."""
        sql, args = "SELECT * FROM runs", []
        where = []
        if sweep is not None:
            where.append("sweep = ?")
            args.append(sweep)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY sweep, point_index"
        return [_decode_run(r) for r in self.db.execute(sql, args)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _decode_run(row) if row is not None else None

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"])
            out.append(d)
        return out

    def sweeps(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT sweep FROM runs ORDER BY sweep")]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=True, default=str)


def _num(value: Any) -> Any:
    """SQLite stores NaN as NULL anyway; make it explicit (and leave other values alone)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _decode_run(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for col in JSON_RUN_COLUMNS:
        if d.get(col) is not None:
            d[col] = json.loads(d[col])
    return d
