"""``run_point``: one experiment from its config to a measured file -- train it (or pick up a
finished run), export its best epoch to ``.pqz`` and measure the file. The one pipeline that
sweeps run for each point and the distillation study runs for its teachers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pqcompress.codec.run_export import export_best
from pqcompress.codec.summary import inspect
from pqcompress.config import ExperimentConfig
from pqcompress.errors import PQCError
from pqcompress.models.factory import is_factory_path
from pqcompress.train.result import FINISHED
from pqcompress.train.rundir import RunDir
from pqcompress.train.trainer import train

PQZ_NAME = "model.pqz"


class PointExportError(PQCError):
    """The run finished but its best epoch could not be exported to ``.pqz``."""


@dataclass(frozen=True)
class PointResult:
    """What ``run_point`` gives: the run's ``RunResult.to_dict()`` (``history`` included:
    the metrics.jsonl rows of a picked-up run), and the exported file with its sizes (None
    when the run did not finish or exporting was off)."""

    result: dict[str, Any]
    picked_up: bool = False
    pqz: Path | None = None
    pqz_bytes: int | None = None
    float32_bytes: int | None = None  # of the model as trained (a shrunk file: before)


def run_point(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    progress: bool = False,
    export: bool = True,
    pqz_name: str = PQZ_NAME,
    **export_options: Any,
) -> PointResult:
    """Train ``config`` in ``run_dir`` (resuming an interrupted run; a finished one, with its
    ``best.pt``, is picked up without building data or model), then export the best epoch to
    ``run_dir/<pqz_name>`` (again only when the best epoch is newer than the file or it was
    exported otherwise: ``codec.export_best``, with ``export_options``) and measure it; a
    lossy file (float16 values) is also evaluated on the test split (``result["file"]``).
    A failed export is one PointExportError; the training result is kept in the run
    directory either way."""
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    stored = finished_result(rd)
    if stored is None:
        result = train(config, run_dir, resume=True, progress=progress).to_dict()
    else:
        result = dict(stored)
        result["history"] = result.get("history") or read_metrics(rd.metrics)
    done = result.get("status") in FINISHED and bool(result.get("best_epoch"))
    if not (export and done):
        return PointResult(result, stored is not None)
    try:
        pqz = export_best(run_dir, run_dir / pqz_name, **export_options)
        totals = inspect(pqz, baseline=False)["totals"]
    except Exception as exc:
        raise PointExportError(f"export to .pqz failed: {type(exc).__name__}: {exc}") from exc
    dense = totals.get("unshrunk_float32_bytes") or totals["float32_bytes"]
    if totals.get("lossy"):  # float16 values: the file is not the checkpoint; measure it
        try:
            result = {**result, "file": file_accuracy(pqz, config)}
        except Exception as exc:
            raise PointExportError(
                f"evaluating {pqz.name} failed: {type(exc).__name__}: {exc}"
            ) from exc
    return PointResult(result, stored is not None, pqz, int(pqz.stat().st_size), int(dense))


def file_accuracy(pqz: Path, config: ExperimentConfig) -> dict[str, Any]:
    """The test accuracy of an exported file itself: ``{"lossy", "test_acc", "n"}``. A lossy
    file (values stored as float16) is not bit for bit the checkpoint its accuracy was
    measured on during training, so its own figure is what the reports give for it."""
    from pqcompress.export.evaluate import evaluate_path

    report = evaluate_path(
        pqz,
        config.dataset,
        split="test",
        root=config.data.root,
        options=dict(config.data.options or {}),
        model=config.model if is_factory_path(config.model) else None,
    )
    return {"lossy": True, "test_acc": float(report["accuracy"]), "n": int(report["n"])}


def finished_result(rd: RunDir) -> dict[str, Any] | None:
    """The stored result of a finished run that has its ``best.pt``, else None (also for an
    unreadable result.json: the run is then resumed or trained)."""
    try:
        stored = rd.read_result()
    except Exception:
        return None
    if stored and stored.get("status") in FINISHED and rd.best.is_file():
        return stored
    return None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metrics.jsonl rows up to the first unreadable line (a torn last write)."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows
