"""One sweep point in a worker: ``export.point.run_point`` (train or pick up, export .pqz,
measure), returned as the row of the results store."""

from __future__ import annotations

import contextlib
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from pqcompress.config import ExperimentConfig

LOG_NAME = "sweep.log"
TRACEBACK_FRAMES = 4


def execute_point(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` = ``{run_id, config, run_dir, export, pqz_name}`` (``export``: keyword
    arguments of ``codec.export_run``; ``pqz_name``: the file in ``run_dir``); never raises.

    A run directory that already holds a finished ``result.json`` is picked up without
    training. Returns ``{run_id, ok, status, values, epochs, error}``: ``values`` are
    ``runs`` columns, ``epochs`` the metrics.jsonl rows; ``ok`` is False when anything
    raised (then ``status`` is "failed" and ``error`` holds type, message and traceback tail).
    Training output goes to ``<run_dir>/sweep.log``.
    """
    run_dir = Path(task["run_dir"])
    out: dict[str, Any] = {
        "run_id": task["run_id"],
        "ok": False,
        "status": "failed",
        "values": {},
        "epochs": [],
        "error": None,
    }
    host = socket.gethostname()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with (
            open(run_dir / LOG_NAME, "a", encoding="utf-8") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
        ):
            print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} on {host}", flush=True)
            try:
                _run(task, run_dir, out)
            except BaseException as exc:  # isolate every failure of a point
                out["ok"], out["status"] = False, "failed"
                out["error"] = format_error(exc)
                out["epochs"] = _metrics(run_dir)
                print(out["error"], flush=True)
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    out["status"] = "interrupted"
    except Exception as exc:
        out["error"] = format_error(exc)
    out["values"]["host"] = host
    return out


def point_failed(task: dict[str, Any], why: str) -> dict[str, Any]:
    """The row of a point whose worker died under it (the executor's ``Job.failure``)."""
    return {
        "run_id": task["run_id"],
        "ok": False,
        "status": "failed",
        "values": {},
        "epochs": [],
        "error": f"WorkerDied: {why} while training",
    }


def _run(task: dict[str, Any], run_dir: Path, out: dict[str, Any]) -> None:
    # lazy: the sweep's driver imports this module, and only its workers need torch
    from pqcompress.export.point import PQZ_NAME, PointExportError, finished_result, run_point
    from pqcompress.train.rundir import RunDir

    config = ExperimentConfig.from_dict(task["config"])
    try:
        point = run_point(
            config, run_dir, pqz_name=task.get("pqz_name", PQZ_NAME), **(task.get("export") or {})
        )
    except PointExportError as exc:  # trained, not exported: the row says so
        out["values"] = run_values(finished_result(RunDir(run_dir)) or {"status": "failed"})
        out["epochs"] = _metrics(run_dir)
        out["status"], out["error"] = "failed", format_error(exc)
        return
    if point.picked_up:
        print(f"picked up the finished run in {run_dir}", flush=True)
    result = dict(point.result)
    out["epochs"] = result.pop("history", None) or _metrics(run_dir)
    out["values"] = run_values(result)
    out["status"] = result["status"]
    if point.pqz is not None:
        out["values"].update(
            pqz_path=str(point.pqz), pqz_bytes=point.pqz_bytes, float32_bytes=point.float32_bytes
        )
    out["ok"] = True


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    from pqcompress.export.point import read_metrics  # lazy, as in _run

    return read_metrics(run_dir / "metrics.jsonl")


def run_values(result: dict[str, Any]) -> dict[str, Any]:
    """``runs`` columns from ``RunResult.to_dict()`` (without its history).

    A post-training run (``result["post"]`` set) is recorded with what it produced: the
    compressed model after the last epoch (its test/val accuracy and density; best epoch =
    the last epoch). Its uncompressed figures stay in ``result``.
    """
    final = result.get("final") or {}
    post = result.get("post")
    if post:
        best = {
            "best_epoch": result.get("epochs_run"),
            "best_test_acc": post.get("test_acc"),
            "train_acc_at_best": final.get("train_acc"),
            "density_at_best": post.get("density"),
            "val_acc_at_best": post.get("val_acc"),
            "final_test_acc": post.get("test_acc"),
        }
    else:
        best = {k: result.get(k) for k in _AT_BEST} | {"final_test_acc": final.get("test_acc")}
    return {
        "status": result["status"],
        **best,
        "final_train_acc": final.get("train_acc"),
        "epochs_run": result.get("epochs_run"),
        "wall_time_s": result.get("wall_time_s"),
        "result": {k: v for k, v in result.items() if k != "history"},
    }


_AT_BEST = (
    "best_epoch",
    "best_test_acc",
    "train_acc_at_best",
    "density_at_best",
    "val_acc_at_best",
)


def format_error(exc: BaseException) -> str:
    """``Type: message`` plus the last few traceback frames."""
    head = f"{type(exc).__name__}: {exc}"
    frames = traceback.format_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
    return head + ("\n" + "".join(frames).rstrip() if frames else "")
