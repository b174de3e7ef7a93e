"""ResultsStore: the sweep's SQLite database (runs, epochs, meta) with short crash-safe transactions."""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pqcompress import storedb
from pqcompress.sweep.errors import StoreError
from pqcompress.sweep.schema import DDL, FINISHED_STATUSES, RUN_STATUSES, SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"
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


def utc_now() -> str:
    """ISO-8601 UTC timestamp with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_complete(row: Mapping[str, Any] | None) -> bool:
    """True when ``row`` is a finished run with every result column filled (rerun skips it)."""
    if row is None or row.get("status") not in FINISHED_STATUSES:
        return False
    return all(row.get(col) is not None for col in COMPLETE_COLUMNS)


class ResultsStore:
    """One SQLite file (WAL mode) holding the runs, epochs and metadata of any number of sweeps.

    Every write is one short ``BEGIN IMMEDIATE`` transaction, so a process killed at any
    moment leaves the database at a transaction boundary. Only one process (the sweep
    driver) writes; readers (``pqcompress report``) may read at the same time.
    ``readonly=True`` opens an existing store without creating or changing anything.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        _check_file(self.path, readonly)
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            self._db = storedb.connect(uri, self.path, StoreError, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store '{self.path}': {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._init()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"'{self.path}' is not a usable SQLite database: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    # ------------------------------------------------------------- open / close

    def _init(self) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(f"PRAGMA busy_timeout = {int(storedb.BUSY_TIMEOUT_S * 1000)}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(
                f"'{self.path}' is a SQLite database but not a pqcompress results store "
                f"(tables: {', '.join(sorted(tables))}); refusing to change it — choose another --store"
            )
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise StoreError(
                    f"'{self.path}' has a meta table without schema_version; "
                    "it is not a pqcompress results store"
                )
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"results store '{self.path}' has schema version {version}, newer than this "
                    f"pqcompress understands ({SCHEMA_VERSION}); upgrade pqcompress to use it"
                )
        if self.readonly:
            if "meta" not in tables:
                raise StoreError(f"'{self.path}' is an empty database, not a results store")
            return
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(f"BEGIN IMMEDIATE;\n{DDL}\nCOMMIT;")  # idempotent DDL, one transaction
        with self._tx():
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", (utc_now(),)
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"results store '{self.path}' was opened read-only")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --------------------------------------------------------------------- meta

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, items: Mapping[str, str]) -> None:
        with self._tx() as db:
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
        with self._tx() as db:
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
        with self._tx() as con:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE sweep = ? AND status = 'pending'", (sweep,)
            ).fetchall()
            gone = [r[0] for r in rows if r[0] not in keep]
            con.executemany("DELETE FROM runs WHERE run_id = ?", [(g,) for g in gone])
        return len(gone)

    def mark_running(self, run_id: str, *, run_dir: str, executor: str) -> None:
        """Status running, one more attempt, start time, error cleared."""
        with self._tx() as db:
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
        with self._tx() as db:
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
        with self._tx() as db:
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
        return [_decode_run(r) for r in self._db.execute(sql, args)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _decode_run(row) if row is not None else None

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"])
            out.append(d)
        return out

    def sweeps(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT sweep FROM runs ORDER BY sweep")]


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
