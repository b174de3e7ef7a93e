"""The results store's SQLite schema: one row per run, one per epoch, key/value metadata.

This DDL is the contract between the sweep runner (writer) and the report (reader); it is
documented field by field in docs/sweep.md. Bump SCHEMA_VERSION on any incompatible change.
JSON columns hold UTF-8 JSON text. Accuracies and densities are fractions in [0, 1].
"""

from __future__ import annotations

SCHEMA_VERSION = 1

RUN_STATUSES = ("pending", "running", "completed", "early_stopped", "failed", "interrupted")
FINISHED_STATUSES = ("completed", "early_stopped")

DDL = """
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
