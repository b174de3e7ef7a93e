"""The results store's SQLite schema: every kind of result in one file.

- runs of sweeps: one row per run, one per epoch (``runs``, ``epochs``);
- search studies: one row per study, real evaluation, finished run and iteration (``search_*``);
- serving benches: one row per bench, load run and start-to-ready measurement (``serving_*``);
- ``meta``: key/value metadata, with the file's ``schema_version``.

This DDL is the contract between the writers (sweep, search, bench-serving) and the report; the
runs table is documented field by field in docs/sweep.md. JSON columns hold UTF-8 JSON text.
Accuracies and densities are fractions in [0, 1]. Bump SCHEMA_VERSION on any change and add the
statements that bring a file from the previous version to ``MIGRATIONS``.

Versions: 1, the sweep tables with ``meta`` (search and serving tables were added to files
without recording a version); 2, every kind in one schema, ``meta`` in every file. From 1 to 2
nothing is rewritten: the missing tables are created and the version recorded.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}  # version -> statements to the next version

RUN_STATUSES = ("pending", "running", "completed", "early_stopped", "failed", "interrupted")
FINISHED_STATUSES = ("completed", "early_stopped")

RUNS_SQL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,   -- stable hash of the point's full experiment config
    sweep             TEXT NOT NULL,      -- sweep name (spec `name`, default: the YAML file stem)
    point_index       INTEGER NOT NULL,   -- position of the point in the expanded sweep
    params            TEXT NOT NULL,      -- JSON: the axis values of this point, e.g. {"alpha": 0.5, "bits": 4}
    config            TEXT NOT NULL,      -- JSON: the full ExperimentConfig.to_dict() of the point
    status            TEXT NOT NULL CHECK (status IN
                        ('pending', 'running', 'completed', 'early_stopped', 'failed', 'interrupted')),
    error             TEXT,               -- failed runs: exception type and message (+ traceback tail)
    attempts          INTEGER NOT NULL DEFAULT 0,
    run_dir           TEXT,               -- the point's run directory (checkpoints, metrics.jsonl, result.json)
    best_epoch        INTEGER,            -- docs/method.md §5: epoch with the highest test accuracy (1-based)
    best_test_acc     REAL,
    train_acc_at_best REAL,
    density_at_best   REAL,               -- share of nonzero compressed weights at the best epoch
    val_acc_at_best   REAL,
    final_test_acc    REAL,               -- last epoch's test accuracy
    final_train_acc   REAL,
    epochs_run        INTEGER,
    pqz_path          TEXT,               -- the exported compressed model file of the best epoch
    pqz_bytes         INTEGER,            -- its size in bytes
    float32_bytes     INTEGER,            -- bytes of the same parameters as dense float32 (for ratios)
    wall_time_s       REAL,               -- training wall time (sums resumed sessions)
    started_at        TEXT,               -- ISO-8601 UTC
    finished_at       TEXT,               -- ISO-8601 UTC
    executor          TEXT,               -- "local" or "ray"
    host              TEXT,               -- hostname of the worker that ran it
    result            TEXT                -- JSON: RunResult.to_dict() without `history`
);

CREATE TABLE IF NOT EXISTS epochs (
    run_id          TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    epoch           INTEGER NOT NULL,     -- 1-based
    train_loss      REAL,
    train_acc       REAL,
    val_acc         REAL,
    test_loss       REAL,
    test_acc        REAL,
    density         REAL,
    lr              REAL,
    epoch_time_s    REAL,
    compress_time_s REAL,
    metrics         TEXT NOT NULL,        -- JSON: the whole metrics.jsonl line
    PRIMARY KEY (run_id, epoch)
);

CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep, point_index);
"""

SEARCH_SQL = """
CREATE TABLE IF NOT EXISTS search_studies (
    study TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS search_evals (
    study TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    variables TEXT NOT NULL,
    objectives TEXT NOT NULL,
    constraints TEXT NOT NULL,
    feasible INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (study, algorithm, repeat, key)
);
CREATE TABLE IF NOT EXISTS search_runs (
    study TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    evaluations INTEGER NOT NULL,
    hypervolume REAL NOT NULL,
    wall_s REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (study, algorithm, repeat)
);
CREATE TABLE IF NOT EXISTS search_iterations (
    study TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    evaluations INTEGER NOT NULL,
    hypervolume REAL NOT NULL,
    fit_s REAL,
    optimize_s REAL,
    picks TEXT,
    PRIMARY KEY (study, algorithm, repeat, iteration)
);
"""

SERVING_SQL = """
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

DDL: tuple[str, ...] = tuple(
    s.strip() for sql in (RUNS_SQL, SEARCH_SQL, SERVING_SQL) for s in sql.split(";") if s.strip()
)
"""Every statement, idempotent (``IF NOT EXISTS``), in order."""

KIND_TABLES = frozenset(
    {"search_studies", "search_evals", "search_runs", "search_iterations"}
    | {"serving_benches", "serving_runs", "serving_ready"}
)
"""Tables a version-1 file may hold without ``meta`` (written by a search or a bench)."""
