"""Sweep overhead: a 4-point sweep of tiny runs through ``run_sweep`` vs the same runs called
directly with ``train_model`` in a loop, in one process and one session; local executor and Ray,
with Ray's start-up (``ray.init`` until tasks can be scheduled) reported separately.

    python benchmarks/sweep_overhead.py --rounds 3 --out benchmarks/results/sweep_overhead

The sweep exports every point to .pqz, so the like-for-like baseline is the loop of
``train_model`` + ``export_run``; the loop of ``train_model`` alone is an extra row. Executors:
local (1 worker forked from a fork server, which is stopped after every sweep so each round
pays its start-up as a CLI run does), inline (in the driver process) and Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pqcompress.codec import export_run
from pqcompress.execute import cpu_count
from pqcompress.sweep import SweepSpec, run_sweep
from pqcompress.train import train

SPEC: dict[str, Any] = {
    "name": "overhead",
    "model": "cnn5",
    "dataset": "digits",
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    "grid": {"alpha": [0.0, 0.5], "bits": [32, 8]},
}


def loop(points: list, root: Path, *, export: bool) -> tuple[float, float]:
    """(wall s, summed training s of the runs)."""
    t0, trained = time.perf_counter(), 0.0
    for p in points:
        run_dir = root / p.run_id
        trained += train(p.config, run_dir, resume=True, progress=False).wall_time_s
        if export:
            export_run(run_dir, run_dir / "model.pqz")
    return time.perf_counter() - t0, trained


def sweep(spec: SweepSpec, root: Path, executor: str) -> tuple[float, float, float | None]:
    """(wall s, summed training s of the runs, one-time start-up s)."""
    t0 = time.perf_counter()
    workers = None if executor == "inline" else 1
    summary = run_sweep(spec, root / "r.db", executor=executor, workers=workers, progress=False)
    wall = time.perf_counter() - t0
    if executor == "local":  # the next round starts a fresh fork server, as a new CLI run does
        from multiprocessing import forkserver

        forkserver._forkserver._stop()
    assert summary.ok and summary.ran == 4, summary.failed
    trained = sum(r["wall_time_s"] for r in summary.rows)
    return wall, trained, summary.startup_s


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep_overhead"))
    args = ap.parse_args()

    spec = SweepSpec.from_dict(SPEC)
    points = spec.points()
    threads = cpu_count()  # what one local worker gets: cores // workers
    torch.set_num_threads(threads)
    kinds = ["loop", "loop+export", "local", "inline"] + ([] if args.no_ray else ["ray"])
    times: dict[str, list[float]] = {k: [] for k in kinds}
    outside: dict[str, list[float]] = {k: [] for k in kinds}  # wall - training time
    startup: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="pqc-sweep-bench-") as tmp:
        warm = Path(tmp) / "warm"
        loop(points[-1:], warm, export=True)  # data cache, numba kernels, imports
        for r in range(args.rounds):
            for kind in kinds:
                root = Path(tmp) / f"{kind}-{r}"
                if kind in ("loop", "loop+export"):
                    wall, trained = loop(points, root, export=kind == "loop+export")
                else:
                    wall, trained, start = sweep(spec, root, kind)
                    if start is not None:
                        startup[kind].append(start)
                times[kind].append(wall)
                outside[kind].append(wall - trained)
                shutil.rmtree(root, ignore_errors=True)
                print(f"round {r + 1} {kind}: {times[kind][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["loop"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    result: dict[str, Any] = {
        "spec": SPEC,
        "rounds": args.rounds,
        "load_average_after": [round(x, 2) for x in load],
        "threads": threads,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}",
        "seconds": times,
        "median_s": med,
        "outside_training_s": outside,
        "median_outside_training_s": {k: statistics.median(v) for k, v in outside.items()},
        "median_outside_training_share": {
            k: statistics.median(o / w for o, w in zip(outside[k], times[k], strict=True))
            for k in kinds
        },
        "ratio_vs_loop": {k: v / base for k, v in med.items()},
        "ratio_vs_loop_export": {k: v / med["loop+export"] for k, v in med.items()},
        "startup_s": {k: statistics.median(v) for k, v in startup.items() if v},
    }
    result["without_startup_ratio_vs_loop_export"] = {
        k: (med[k] - v) / med["loop+export"] for k, v in result["startup_s"].items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    med, rl, rle = r["median_s"], r["ratio_vs_loop"], r["ratio_vs_loop_export"]
    lines = [
        "# Sweep overhead: run_sweep vs the same runs in a loop (train_model + export_run)",
        "",
        "4 points (cnn5 on digits, 1 epoch, batch 64; alpha {0, 0.5} x bits {32, 8}), "
        f"median of {r['rounds']} interleaved rounds in one process after a warm-up run; "
        f"torch threads {r['threads']} in the loop and in the one sweep worker. {r['machine']}.",
        "",
        "Command: `OMP_NUM_THREADS=2 nice -n 10 python benchmarks/sweep_overhead.py "
        f"--rounds {r['rounds']}` (2-core machine shared with other jobs; load average "
        f"after the run: {', '.join(str(x) for x in r.get('load_average_after', []))}).",
        "",
        "| how | median wall s | vs loop of train_model + export (baseline) "
        "| vs loop of train_model only | outside training: median s (share of wall) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    out_s, out_share = r["median_outside_training_s"], r["median_outside_training_share"]
    names = {
        "loop": "loop: train_model",
        "loop+export": "loop: train_model + export_run",
        "local": "run_sweep, local executor (1 worker from a fresh fork server)",
        "inline": "run_sweep, inline executor (in the driver process)",
        "ray": "run_sweep, Ray (private local Ray, 1 CPU)",
    }
    for k in med:
        lines.append(
            f"| {names[k]} | {med[k]:.2f} | {rle[k]:.3f}x | {rl[k]:.3f}x "
            f"| {out_s[k]:.2f} ({100 * out_share[k]:.1f}%) |"
        )
    names_start = {
        "local": "worker start-up (fork server's preload of torch & co., then fork until "
        "ready; the preload overlaps the driver's planning, only ms here)",
        "ray": "Ray start-up (`ray.init` until tasks can be scheduled)",
    }
    if r["startup_s"]:
        lines += [
            "",
            "| one-time start-up, included above | median s | rest vs loop + export |",
            "| --- | ---: | ---: |",
        ]
        for k, v in r["startup_s"].items():
            rest = r["without_startup_ratio_vs_loop_export"][k]
            lines.append(f"| {names_start[k]} | {v:.2f} | {rest:.3f}x |")
    for k in ("local", "inline"):
        if k in med:
            extra = med[k] - med["loop+export"]
            lines.append(
                f"\nThe {k} sweep took {extra:+.2f} s vs the loop with export "
                f"({100 * extra / med['loop+export']:+.0f}%; target <= +10%)."
            )
    lines += [
        "",
        "'Outside training' is the wall time minus the runs' own training time (`RunResult."
        "wall_time_s`, summed): data and model building, export, store writes, process and "
        "Ray start-up. The training time itself depends on the machine's load, which changes "
        "between the rows; the outside-training column is the steadier measure of overhead.",
        "",
        "The sweep's extra work per point: SQLite writes (pending/running/result + epoch rows), "
        "the worker round trip, and the `.pqz` export with `inspect` of its size; once per "
        "sweep (local executor): starting the fork server (imports torch, torch._dynamo, the "
        "training and codec modules, numba's target set-up) concurrently with the driver's "
        "planning, then one fork per worker and the first point's first-use costs (dataset "
        "read, numba kernel loads) in the fresh worker; the inline executor has none of these.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
