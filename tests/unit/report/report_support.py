"""Helpers for the report tests: results stores built from the fixed schema with realistic rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig
from pqcompress.results.schema import DDL, SCHEMA_VERSION

CLASSES = 10


def confusion(acc: float, n: int = 20) -> list[list[int]]:
    """A CLASSES x CLASSES matrix with about ``acc`` of each row on the diagonal."""
    hit = round(acc * n)
    rows = []
    for i in range(CLASSES):
        row = [0] * CLASSES
        row[i] = hit
        row[(i + 1) % CLASSES] += n - hit
        rows.append(row)
    return rows


def run_row(
    index: int,
    *,
    alpha: float,
    bits: int,
    lr: float = 0.05,
    status: str = "completed",
    acc: float | None = 0.8,
    density: float | None = None,
    epochs: int = 3,
    sweep: str = "grid",
    model: str = "cnn5",
    dataset: str = "digits",
    run_dir: str | None = None,
    pqz_path: str | None = None,
    pqz_bytes: int | None = None,
    float32_bytes: int = 400_000,
    error: str | None = None,
    extra_params: dict[str, Any] | None = None,
    compression_none: bool = False,
    compression: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``runs`` row (plus its ``epochs`` rows under the key ``_epochs``); ``compression``:
    more CompressionConfig fields."""
    comp = (
        None
        if compression_none
        else CompressionConfig(alpha=alpha, bits=bits, **(compression or {}))
    )
    cfg = ExperimentConfig(
        model=model, dataset=dataset, train=TrainConfig(epochs=epochs, lr=lr), compression=comp
    ).to_dict()
    params = {"alpha": alpha, "bits": bits, "train.lr": lr, **(extra_params or {})}
    finished = status in ("completed", "early_stopped")
    if density is None:
        density = 1.0 if alpha == 0 else max(0.05, 1.0 - alpha)
    has_epochs = finished or status in ("running", "interrupted")
    n_ep = epochs if finished else (1 if has_epochs else 0)
    ep_rows = []
    for e in range(1, n_ep + 1):
        test = (acc or 0.5) * (0.7 + 0.3 * e / epochs)
        ep_rows.append(
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "train_acc": min(1.0, test + 0.05),
                "val_acc": test,
                "test_loss": 1.0 / e,
                "test_acc": test,
                "density": density,
                "lr": lr,
                "epoch_time_s": 1.0,
                "compress_time_s": 0.1,
                "metrics": json.dumps({"epoch": e, "test_acc": test}),
            }
        )
    best_epoch = epochs if finished else None
    result = None
    if finished:
        result = {
            "status": status,
            "epochs_run": epochs,
            "best_epoch": best_epoch,
            "best_test_acc": acc,
            "test_report_at_best": {
                "accuracy": acc,
                "confusion_matrix": confusion(acc or 0.0),
                "class_names": [str(i) for i in range(CLASSES)],
            },
            "config": cfg,
        }
    return {
        "run_id": f"{index:04d}" + "ab" * 30,
        "sweep": sweep,
        "point_index": index,
        "params": json.dumps(params),
        "config": json.dumps(cfg),
        "status": status,
        "error": error,
        "attempts": 1,
        "run_dir": run_dir,
        "best_epoch": best_epoch,
        "best_test_acc": acc if finished else None,
        "train_acc_at_best": min(1.0, acc + 0.05) if finished and acc is not None else None,
        "density_at_best": density if finished else None,
        "val_acc_at_best": acc if finished else None,
        "final_test_acc": acc if finished else None,
        "final_train_acc": None,
        "epochs_run": n_ep,
        "pqz_path": pqz_path,
        "pqz_bytes": pqz_bytes
        if pqz_bytes is not None
        else (int(float32_bytes * density * bits / 32) + 2000 if finished else None),
        "float32_bytes": float32_bytes,
        "wall_time_s": 12.5 if has_epochs else None,
        "started_at": "2025-01-01T10:00:00Z" if status != "pending" else None,
        "finished_at": f"2025-01-01T10:{index:02d}:00Z" if finished else None,
        "executor": "local",
        "host": "test",
        "result": json.dumps(result) if result else None,
        "_epochs": ep_rows,
    }


def write_store(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Create a results store from the schema's DDL and insert ``rows`` (from ``run_row``)."""
    con = sqlite3.connect(path)
    with con:
        con.executescript(";\n".join(DDL))
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        for row in rows:
            epochs = row["_epochs"]
            cols = [k for k in row if not k.startswith("_")]
            con.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row[c] for c in cols],
            )
            for ep in epochs:
                ecols = ["run_id", *ep]
                con.execute(
                    f"INSERT INTO epochs ({', '.join(ecols)}) "
                    f"VALUES ({', '.join('?' * len(ecols))})",
                    [row["run_id"], *ep.values()],
                )
    con.close()
    return path


def grid_rows(**kw: Any) -> list[dict[str, Any]]:
    """A finished 3 x 3 grid (alpha 0/.5/.75 x bits 32/8/4) at two learning rates.

    At lr 0.05 every accuracy is 0.02 higher than at lr 0.01, except (0.5, 4) where lr 0.01
    wins (0.70 vs 0.60): the best-over-lr selection must pick different lrs per cell.
    """
    accs = {
        (0.0, 32): 0.90,
        (0.0, 8): 0.88,
        (0.0, 4): 0.20,
        (0.5, 32): 0.86,
        (0.5, 8): 0.85,
        (0.5, 4): 0.60,
        (0.75, 32): 0.84,
        (0.75, 8): 0.83,
        (0.75, 4): 0.78,
    }
    dens = {0.0: 1.0, 0.5: 0.30, 0.75: 0.10}
    rows, i = [], 0
    for (alpha, bits), acc in accs.items():
        for lr in (0.01, 0.05):
            a = acc + (0.02 if lr == 0.05 else 0.0)
            if (alpha, bits) == (0.5, 4):
                a = 0.70 if lr == 0.01 else 0.60
            d = min(1.0, dens[alpha] * (1.1 if lr == 0.01 else 1.0))
            rows.append(run_row(i, alpha=alpha, bits=bits, lr=lr, acc=a, density=d, **kw))
            i += 1
    return rows


def rows_with_real_runs(real_runs: dict[str, Path]) -> list[dict[str, Any]]:
    """``grid_rows`` whose baseline (point 1) and most compressed run (point 17) point at the
    real run directories, plus a failed, a running and a pending point."""
    rows = grid_rows()
    for r in rows:
        if r["point_index"] == 1:
            r["run_dir"] = str(real_runs["base"])
            r["pqz_path"] = str(real_runs["base"] / "model.pqz")
        if r["point_index"] == 17:
            r["run_dir"] = str(real_runs["small"])
            r["pqz_path"] = str(real_runs["small"] / "model.pqz")
    n = len(rows)
    rows += [
        run_row(n, alpha=0.25, bits=8, status="failed", acc=None, error="RuntimeError: boom\ntb"),
        run_row(n + 1, alpha=0.25, bits=4, status="running", acc=None),
        run_row(n + 2, alpha=0.25, bits=32, status="pending", acc=None),
    ]
    return rows
