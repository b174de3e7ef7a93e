"""Channel pruning, shrunk at export, against element pruning: trained runs exported to .pqz
(``--shrink`` for channel-granularity runs), then per run its accuracy (test at the best
validation epoch), file bytes, parameters, MACs and batch-1 latency (median of rounds, one
thread, all in one process): torch eager of the loaded model and ONNX Runtime on each
embedded graph. Ratios are against the first run's unshrunk float32 torch eager latency
(the architecture a user starts from; torch computes an element-pruned model densely, so
this is the dense float32 latency) measured in the same process.

    python benchmarks/shrink_latency.py \\
        runs/cnn5-sparse10-s0 runs/cnn5-channel50-s0 runs/cnn5-channel25-s0 --rounds 100 \\
        --table benchmarks/results/shrink_latency.md --json benchmarks/results/shrink_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _median_ms(fn: Callable[[], object], rounds: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _cpu_model() -> str:
    from pqcompress.cpus import cpu_model

    return cpu_model()


def _run_row(run: Path, out_dir: Path, rounds: int, warmup: int, x: torch.Tensor) -> dict[str, Any]:
    import onnxruntime as ort

    import pqcompress as pqc
    from pqcompress.aware.channels import count_macs
    from pqcompress.codec import export_run, portable

    result = json.loads((run / "result.json").read_text())
    comp = (result.get("config") or {}).get("compression") or {}
    channel = comp.get("granularity") == "channel"
    path = export_run(run, out_dir / f"{run.name}.pqz", shrink=channel)
    info = portable.model_info(path)
    model = pqc.load(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    row: dict[str, Any] = {
        "run": run.name,
        "granularity": "channel" if channel else "element",
        "bits": comp.get("bits"),
        "test_acc": result.get("best_test_acc"),
        "selection": result.get("selection"),
        "file_bytes": info["file_bytes"],
        "params": info["params"],
        "density": info["density"],
        "shrunk": info.get("shrunk"),
        "macs": count_macs(model, x),
    }
    with torch.no_grad():
        row["torch_ms"] = _median_ms(lambda: model(x), rounds, warmup)
    for graph in info["graphs"]:
        int8 = graph["name"] == "int8"
        sess = ort.InferenceSession(
            portable.onnx_model_bytes(path, int8=int8),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        name = sess.get_inputs()[0].name
        feed = {name: x.numpy()}
        row[f"ort_{graph['name']}_ms"] = _median_ms(
            lambda sess=sess, feed=feed: sess.run(None, feed), rounds, warmup
        )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="trained run directories")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--render", type=Path, default=None, help="only render this JSON's table")
    args = ap.parse_args(argv)
    if args.render is not None:
        text = _table(json.loads(args.render.read_text()))
        if args.table:
            args.table.write_text(text)
        print(text)
        return 0

    import pqcompress as pqc
    from pqcompress.codec import export_run, portable

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pqc-shrink-") as tmp:
        # the baseline: the first run's dense float32 model (its weights, unshrunk)
        first = export_run(args.runs[0], Path(tmp) / "dense.pqz", onnx="none")
        shape = tuple(int(d) for d in portable.model_info(first)["input_shape"])
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, *shape)).astype("f4"))
        dense = pqc.load(first)
        with torch.no_grad():
            base_ms = _median_ms(lambda: dense(x), args.rounds, args.warmup)
        for run in args.runs:
            rows.append(_run_row(run, Path(tmp), args.rounds, args.warmup, x))
            print(json.dumps(rows[-1], default=str), flush=True)
    report = {
        "cpu": _cpu_model(),
        "threads": 1,
        "torch": torch.__version__,
        "os_cpus": os.cpu_count(),
        "dense_float32_torch_ms": base_ms,
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.table:
        args.table.write_text(_table(report))
    print(_table(report))
    return 0


def _table(report: dict[str, Any]) -> str:
    base = report["dense_float32_torch_ms"]
    lines = [
        "# Channel pruning shrunk at export vs element pruning: size and batch-1 latency",
        "",
        f"CPU: {report['cpu']}; one thread; torch {report['torch']}; median of rounds. "
        f"Baseline: the first run's model in torch eager, dense compute (what the unpruned "
        f"float32 model costs), {base:.3f} ms (ratios are "
        "baseline / row).",
        "",
        "| run | granularity | test acc | .pqz bytes | params | MACs | torch ms | ORT float32 ms "
        "| ORT int8 ms | best x vs dense float32 torch |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        macs = r.get("macs")
        ms = [r.get(k) for k in ("torch_ms", "ort_float32_ms", "ort_int8_ms") if r.get(k)]
        best = base / min(ms) if ms else float("nan")
        acc = r.get("test_acc")

        def fmt(v: Any) -> str:
            return "-" if v is None else f"{v:.3f}"

        lines.append(
            f"| {r['run']} | {r['granularity']} | "
            f"{'-' if acc is None else f'{100 * acc:.2f}%'} | {r['file_bytes']:,} | "
            f"{r['params']:,} | {'-' if macs is None else f'{macs / 1e6:.2f} M'} | "
            f"{fmt(r.get('torch_ms'))} | {fmt(r.get('ort_float32_ms'))} | "
            f"{fmt(r.get('ort_int8_ms'))} | {best:.2f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
