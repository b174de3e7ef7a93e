"""One sweep point in a worker: train (or pick up a finished run), export .pqz, return the row."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from pqcompress.results.schema import FINISHED_STATUSES

PQZ_NAME = "model.pqz"
LOG_NAME = "sweep.log"
TRACEBACK_FRAMES = 4


def execute_point(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` = ``{run_id, config, run_dir}``; never raises.

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
                out["epochs"] = _read_metrics(run_dir / "metrics.jsonl")
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
    from pqcompress.config import ExperimentConfig
    from pqcompress.train.rundir import RunDir

    config = ExperimentConfig.from_dict(task["config"])
    rd = RunDir(run_dir)
    stored = _finished_result(rd)
    if stored is None:
        from pqcompress.train.trainer import train

        result = train(config, run_dir, resume=True, progress=False).to_dict()
    else:
        print(f"picked up the finished run in {run_dir}", flush=True)
        result = stored
    history = result.pop("history", None) or _read_metrics(rd.metrics)
    out["epochs"] = history
    out["values"] = run_values(result)
    out["status"] = result["status"]
    if result["status"] in FINISHED_STATUSES and result.get("best_epoch"):
        try:
            out["values"].update(export_point(run_dir))
        except Exception as exc:
            out["status"] = "failed"
            out["error"] = f"export to .pqz failed: {format_error(exc)}"
            return
    out["ok"] = True


def _finished_result(rd: Any) -> dict[str, Any] | None:
    try:
        stored = rd.read_result()
    except Exception:
        return None
    if stored and stored.get("status") in FINISHED_STATUSES and rd.best.is_file():
        return stored
    return None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def run_values(result: dict[str, Any]) -> dict[str, Any]:
    """``runs`` columns from ``RunResult.to_dict()`` (without its history).

    A post-training run (``result["post"]`` set) is recorded with what it produced: the
    compressed model after the last epoch (its test/val accuracy and density; best epoch =
    the last epoch). Its uncompressed figures stay in ``result``.
    """
    final = result.get("final") or {}
    post = result.get("post")
    if post:
        return {
            "status": result["status"],
            "best_epoch": result.get("epochs_run"),
            "best_test_acc": post.get("test_acc"),
            "train_acc_at_best": final.get("train_acc"),
            "density_at_best": post.get("density"),
            "val_acc_at_best": post.get("val_acc"),
            "final_test_acc": post.get("test_acc"),
            "final_train_acc": final.get("train_acc"),
            "epochs_run": result.get("epochs_run"),
            "wall_time_s": result.get("wall_time_s"),
            "result": {k: v for k, v in result.items() if k != "history"},
        }
    return {
        "status": result["status"],
        "best_epoch": result.get("best_epoch"),
        "best_test_acc": result.get("best_test_acc"),
        "train_acc_at_best": result.get("train_acc_at_best"),
        "density_at_best": result.get("density_at_best"),
        "val_acc_at_best": result.get("val_acc_at_best"),
        "final_test_acc": final.get("test_acc"),
        "final_train_acc": final.get("train_acc"),
        "epochs_run": result.get("epochs_run"),
        "wall_time_s": result.get("wall_time_s"),
        "result": {k: v for k, v in result.items() if k != "history"},
    }


def export_point(run_dir: Path) -> dict[str, Any]:
    """Export the best epoch to ``<run_dir>/model.pqz`` (kept when newer than best.pt)."""
    from pqcompress.codec import export_best, inspect

    pqz = export_best(run_dir, run_dir / PQZ_NAME)
    totals = inspect(pqz, baseline=False)["totals"]
    dense = totals.get("unshrunk_float32_bytes") or totals["float32_bytes"]
    return {
        "pqz_path": str(pqz),
        "pqz_bytes": int(pqz.stat().st_size),
        "float32_bytes": int(dense),  # of the model as trained (a shrunk file: before shrinking)
    }


def format_error(exc: BaseException) -> str:
    """``Type: message`` plus the last few traceback frames."""
    head = f"{type(exc).__name__}: {exc}"
    frames = traceback.format_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
    return head + ("\n" + "".join(frames).rstrip() if frames else "")
