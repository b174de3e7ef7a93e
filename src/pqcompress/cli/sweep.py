"""``pqcompress sweep``: run (or list) every point of a sweep YAML into a SQLite results store."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

EXIT_FAILED_POINTS = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of training runs (alpha x bits x lr ...) into a results database",
        description=(
            "Expand SWEEP.yaml (base experiment + grid axes + include points), run every point "
            "that the store does not hold as finished, export each best epoch to .pqz and record "
            "runs and epochs in the SQLite --store. Rerun the same command to resume after an "
            "interruption. Schema and semantics: docs/sweep.md."
        ),
    )
    p.add_argument("spec", type=Path, metavar="SWEEP.yaml")
    p.add_argument("--store", type=Path, required=True, help="SQLite results database (created)")
    p.add_argument(
        "--executor",
        default="local",
        help="local (default: worker processes), inline (in this process) or ray",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel points (local default: 1, or one per GPU; ray: the local Ray's CPUs)",
    )
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (e.g. auto)")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="root of the run directories (default: <store stem>_runs beside the store); "
        "each point runs in <runs-dir>/<sweep name>/<run_id>/",
    )
    p.add_argument(
        "--onnx",
        choices=("auto", "none", "float32", "all"),
        default=None,
        help="graphs embedded in each point's .pqz (overrides the file's export.onnx; "
        "none: torch-only files)",
    )
    p.add_argument(
        "--float16",
        action="store_true",
        help="store the tensors kept as values in float16 (export.float_dtype; lossy: each "
        "file is evaluated on the test split)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the points and their status only")
    p.add_argument(
        "--no-retry-failed", action="store_true", help="leave points that failed before alone"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pqcompress.sweep import ResultsStore, SweepSpec, plan_sweep, run_sweep
    from pqcompress.sweep.runner import EXECUTORS, default_runs_dir

    spec = SweepSpec.from_yaml(args.spec)
    if args.onnx is not None or args.float16:
        export = replace(
            spec.export,
            onnx=args.onnx or spec.export.onnx,
            float_dtype="float16" if args.float16 else spec.export.float_dtype,
        )
        spec = replace(spec, export=export)
    EXECUTORS.get(args.executor)  # unknown names fail before any work
    if args.dry_run:
        store = ResultsStore(args.store, readonly=True) if args.store.exists() else None
        try:
            runs_dir = args.runs_dir or default_runs_dir(args.store)
            plans = plan_sweep(spec, store, runs_dir, retry_failed=not args.no_retry_failed)
        finally:
            if store is not None:
                store.close()
        _print_plan(spec.name or "", plans)
        return 0
    summary = run_sweep(
        spec,
        args.store,
        executor=args.executor,
        workers=args.workers,
        runs_dir=args.runs_dir,
        ray_address=args.ray_address,
        progress=not args.no_progress,
        retry_failed=not args.no_retry_failed,
    )
    _print_summary(summary)
    if summary.busy:
        holders = sorted({b["holder"] for b in summary.busy})
        print(
            f"note: {len(summary.busy)} point(s) were left to another sweep process running "
            f"them ({'; '.join(holders)}); rerun the same command once it ends to pick up "
            "anything it leaves",
            file=sys.stderr,
        )
    if summary.failed:
        names = "; ".join(f"#{r['point_index']} {_params(r['params'])}" for r in summary.failed)
        print(
            f"pqcompress: error: {len(summary.failed)} point(s) failed: {names}; "
            f"errors are in the store (runs.error) and each run's sweep.log; "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED_POINTS
    return 0


def _params(params: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in params.items()) or "(base)"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _print_plan(name: str, plans: list[Any]) -> None:
    from rich.table import Table

    from pqcompress.cli.console import make_console

    table = Table(title=f"sweep {name}: {len(plans)} point(s)")
    for col in ("#", "run_id", "params", "status", "action", "best test acc"):
        table.add_column(col, justify="right" if col in ("#", "best test acc") else "left")
    for p in plans:
        row = p.row or {}
        table.add_row(
            str(p.point.index),
            p.point.run_id,
            p.point.label,
            row.get("status", "new"),
            p.action,
            _pct(row.get("best_test_acc")),
        )
    make_console().print(table)


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    from pqcompress.cli.console import make_console

    table = Table(title=f"sweep {summary.sweep}: ran {summary.ran}, skipped {summary.skipped}")
    cols = ("#", "params", "status", "best test acc", "density", ".pqz bytes", "x smaller", "time")
    for col in cols:
        table.add_column(col, justify="left" if col in ("params", "status") else "right")
    for r in summary.rows:
        ratio = (
            f"{r['float32_bytes'] / r['pqz_bytes']:.2f}"
            if r.get("pqz_bytes") and r.get("float32_bytes")
            else "-"
        )
        table.add_row(
            str(r["point_index"]),
            _params(r["params"]),
            r["status"],
            _pct(r.get("best_test_acc")),
            _pct(r.get("density_at_best")),
            "-" if r.get("pqz_bytes") is None else f"{r['pqz_bytes']:,}",
            ratio,
            "-" if r.get("wall_time_s") is None else f"{r['wall_time_s']:.0f}s",
        )
    make_console().print(table)
