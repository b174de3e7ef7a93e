"""Users' own models end to end: float32 vs P->Q 4-bit runs of models written outside
``pqcompress.models`` (examples/), exported, served and load tested, in one report.

For each pair of finished runs (float32, P->Q) it measures, on the test split:

- accuracy of each run at its best *validation* epoch, and the difference;
- bytes of each run's ``.pqz`` (``export_run``, graphs embedded) and of the float32 weights;
- coverage: every floating-point parameter of the model, compressed or left out with why;
- the embedded graphs against torch: float32 graph max |logit diff| and int8 graph top-1
  agreement with the loaded ``.pqz`` model (and its accuracy);
- the service: ``pqcompress serve`` on the P->Q file (default runtime, int8 when the file
  allows it), driven by ``pqcompress loadtest --from-spec`` (payloads made from the served
  input spec) at a constant rate: p50/p95 and errors.

    nice -n 19 python benchmarks/your_model.py --out docs/results/your-model

Runs are named in PAIRS (the recipes in recipes/*_cpu.yaml make them); missing runs are
skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {
    "mobilenet": ("runs/mnv2-float", "runs/mnv2-pq4", "examples.mobilenet:build"),
    "transformer": (
        "runs/transformer-float",
        "runs/transformer-pq4",
        "examples.sequence:transformer",
    ),
    "lstm": ("runs/lstm-float", "runs/lstm-pq4", "examples.sequence:lstm"),
    # the same transformer with its embeddings and position table left in float32
    "transformer-no-embeddings": (
        "runs/transformer-float",
        "runs/transformer-pq4-noemb",
        "examples.sequence:transformer",
    ),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> str:
    from pqcompress.cpus import cpu_model

    return cpu_model()


def _coverage(model: torch.nn.Module, compression: dict[str, Any]) -> dict[str, Any]:
    from pqcompress.aware.policy import coverage
    from pqcompress.config import CompressionConfig, from_dict

    rows = coverage(model, from_dict(CompressionConfig, compression, "compression"))
    total = sum(r.numel for r in rows)
    left: dict[str, int] = {}
    for r in rows:
        if not r.compressed:
            left[str(r.reason)] = left.get(str(r.reason), 0) + r.numel
    return {
        "parameters": total,
        "compressed": sum(r.numel for r in rows if r.compressed),
        "share": sum(r.numel for r in rows if r.compressed) / total,
        "tensors": len(rows),
        "tensors_compressed": sum(1 for r in rows if r.compressed),
        "left_out": dict(sorted(left.items(), key=lambda kv: -kv[1])),
    }


def _graphs_vs_torch(pqz: Path, model: torch.nn.Module, bundle: Any, limit: int) -> dict[str, Any]:
    import onnxruntime as ort

    from pqcompress.codec.portable import model_info, onnx_model_bytes
    from pqcompress.data.batches import evaluation_view
    from pqcompress.data.loader import make_loader

    info = model_info(str(pqz))
    graphs = [g["name"] for g in info["graphs"]]
    sessions = {
        g: ort.InferenceSession(
            onnx_model_bytes(str(pqz), int8=g == "int8"), providers=["CPUExecutionProvider"]
        )
        for g in graphs
    }
    name = next(iter(sessions.values())).get_inputs()[0].name
    diffs, agree, correct, seen = [], {g: 0 for g in graphs}, {g: 0 for g in graphs}, 0
    torch_correct = 0
    for x, y in make_loader(evaluation_view(bundle.test), 250, shuffle=False):
        if seen >= limit:
            break
        with torch.inference_mode():
            want = model(x).float().numpy()
        feed = {name: x.numpy()}
        for g, s in sessions.items():
            (got,) = s.run(None, feed)
            if g == "float32":
                diffs.append(float(np.abs(got - want).max()))
            agree[g] += int((got.argmax(1) == want.argmax(1)).sum())
            correct[g] += int((got.argmax(1) == y.numpy()).sum())
        torch_correct += int((want.argmax(1) == y.numpy()).sum())
        seen += len(y)
    return {
        "samples": seen,
        "graphs": graphs,
        "torch_accuracy": torch_correct / seen,
        "float32_max_abs_diff": max(diffs) if diffs else None,
        "top1_agreement": {g: agree[g] / seen for g in graphs},
        "graph_accuracy": {g: correct[g] / seen for g in graphs},
        "int8_layers": _int8_layers(onnx_model_bytes(str(pqz), int8=True))
        if "int8" in graphs
        else None,
    }


def _int8_layers(blob: bytes) -> dict[str, int]:
    import onnx

    g = onnx.load_from_string(blob).graph
    dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    ops = [n for n in g.node if n.op_type in ("Conv", "Gemm", "MatMul", "Gather", "LSTM")]
    return {
        "weight_ops": len(ops),
        "weight_ops_on_int8": sum(
            1 for n in ops if len(n.input) > 1 and (n.input[1] in dq or n.input[0] in dq)
        ),
    }


def _serve_and_load(
    pqz: Path, out: Path, rps: float, duration: float, axis: list[str]
) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "pqcompress", "serve", str(pqz), "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        cmd = [sys.executable, "-m", "pqcompress", "loadtest", url, "--from-spec", "--profile", "rate",
               "--rps", str(rps), "--duration", str(duration), "--prometheus", "off",
               "--payload-count", "64", "--ready-timeout", "120", "-o", str(out)]  # fmt: skip
        for a in axis:
            cmd += ["--axis", a]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 300, env=env)
        if done.returncode != 0:
            print(
                f"loadtest of {pqz.name} exited {done.returncode}: {done.stderr[-800:]}",
                file=sys.stderr,
            )
        summary = (
            json.loads((out / "summary.json").read_text())
            if (out / "summary.json").exists()
            else {}
        )
        import urllib.request

        with urllib.request.urlopen(f"{url}/v1/model", timeout=10) as r:
            served = json.loads(r.read())
        return {
            "command": " ".join(["pqcompress", *cmd[3:]]),
            "exit": done.returncode,
            "int8": served.get("int8"),
            "inputs": served.get("inputs")
            or [{"name": "input", "shape": ["batch", *served["input_shape"]]}],
            "requests": summary.get("requests"),
            "ok": summary.get("ok"),
            "errors": summary.get("errors_total"),
            "p50_ms": summary.get("p50_ms"),
            "p95_ms": summary.get("p95_ms"),
        }
    finally:
        server.terminate()
        server.communicate(timeout=60)


def measure(
    name: str, float_run: Path, pq_run: Path, factory: str, args: argparse.Namespace
) -> dict[str, Any]:
    import pqcompress as pqc
    from pqcompress.codec import export_run
    from pqcompress.codec.portable import model_info
    from pqcompress.config import ExperimentConfig
    from pqcompress.data.registry import build_dataset

    results = {r: json.loads((r / "result.json").read_text()) for r in (float_run, pq_run)}
    cfg = ExperimentConfig.from_dict(results[pq_run]["config"])
    bundle = build_dataset(cfg.dataset, cfg.data, seed=cfg.train.seed)
    row: dict[str, Any] = {"model": name, "factory": factory, "dataset": cfg.dataset}
    with tempfile.TemporaryDirectory(prefix="pqc-your-model-") as tmp:
        files = {}
        for label, run in (("float32", float_run), ("pq4", pq_run)):
            files[label] = export_run(run, Path(tmp) / f"{label}.pqz", onnx="auto")
            bare = export_run(run, Path(tmp) / f"{label}-bare.pqz", onnx="none")
            info = model_info(str(files[label]))
            r = results[run]
            row[label] = {
                "run": str(run),
                "test_acc_at_best_val": r["best_test_acc"],
                "best_val_epoch": r["best_val_epoch"],
                "epochs": r["epochs_run"],
                "wall_time_s": round(r["wall_time_s"], 1),
                "pqz_bytes": info["file_bytes"],
                "pqz_bytes_without_graphs": bare.stat().st_size,
                "float32_bytes": info["float32_bytes"],
                "density": r["density_at_best"],
                "graphs": [g["name"] for g in info["graphs"]],
            }
        row["delta_points"] = 100 * (
            row["pq4"]["test_acc_at_best_val"] - row["float32"]["test_acc_at_best_val"]
        )
        row["x_smaller_than_float32"] = row["pq4"]["float32_bytes"] / row["pq4"]["pqz_bytes"]
        row["x_smaller_without_graphs"] = (
            row["pq4"]["float32_bytes"] / row["pq4"]["pqz_bytes_without_graphs"]
        )
        model = pqc.load(files["pq4"], model=factory).eval()
        row["coverage"] = _coverage(
            pqc.load(files["pq4"], model=factory), results[pq_run]["config"]["compression"]
        )
        row["graphs_vs_torch"] = _graphs_vs_torch(files["pq4"], model, bundle, args.limit)
        if not args.no_serve:
            axis = []
            row["service"] = _serve_and_load(
                files["pq4"], Path(tmp) / "lt", args.rps, args.duration, axis
            )
    return row


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = ["# Users' own models: float32 vs P->Q 4-bit, exported, served, load tested", ""]
    out += [
        f"Machine: {meta['cpu']}, torch {meta['torch']}, {meta['threads']} threads. Produced by "
        f"`{meta['command']}` on {meta['date']}. Accuracy is the test accuracy at the epoch with "
        "the best validation accuracy (never chosen on test).",
        "",
        "| model | data | float32 acc | P->Q 4-bit acc | delta (points) | float32 .pqz | P->Q .pqz (with its ONNX graphs) | P->Q .pqz, tensors only | x smaller than float32 weights (with graphs / tensors only) | parameters compressed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        f, q, c = r["float32"], r["pq4"], r["coverage"]
        out.append(
            f"| {r['model']} (`{r['factory']}`) | {r['dataset']} | {100 * f['test_acc_at_best_val']:.2f}% "
            f"| {100 * q['test_acc_at_best_val']:.2f}% | {r['delta_points']:+.2f} | {f['pqz_bytes']:,} B "
            f"| {q['pqz_bytes']:,} B | {q['pqz_bytes_without_graphs']:,} B "
            f"| {r['x_smaller_than_float32']:.1f}x / {r['x_smaller_without_graphs']:.1f}x | {100 * c['share']:.1f}% |"
        )
    out += ["", "## Coverage (share of parameters compressed; what is left out and why)", ""]
    out += [
        "| model | parameters | compressed | left out (elements, reason) |",
        "| --- | ---: | ---: | --- |",
    ]
    for r in rows:
        c = r["coverage"]
        left = "; ".join(f"{n:,}: {why}" for why, n in c["left_out"].items()) or "nothing"
        out.append(
            f"| {r['model']} | {c['parameters']:,} | {c['compressed']:,} ({100 * c['share']:.1f}%) | {left} |"
        )
    out += ["", "## Embedded graphs against torch (P->Q file, test split)", ""]
    out += [
        "| model | samples | float32 graph max abs diff | int8 graph top-1 agreement | int8 graph acc | weight ops on int8 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        g = r["graphs_vs_torch"]
        int8 = "int8" in g["graphs"]
        layers = g.get("int8_layers") or {}
        out.append(
            f"| {r['model']} | {g['samples']} | {g['float32_max_abs_diff']:.2e} | "
            + (f"{100 * g['top1_agreement']['int8']:.2f}% | {100 * g['graph_accuracy']['int8']:.2f}% | "
               f"{layers.get('weight_ops_on_int8')}/{layers.get('weight_ops')} |" if int8 else "no int8 graph | | |")
        )  # fmt: skip
    if any("service" in r for r in rows):
        out += ["", "## Served and load tested (payloads from the served input spec)", ""]
        out += [
            "| model | inputs | int8 kernels | requests | errors | p50 | p95 |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            s = r.get("service")
            if not s:
                continue
            ins = ", ".join(
                f"`{i['name']}` {i.get('dtype', 'float32')} {i['shape']}" for i in s["inputs"]
            )
            ms = "{:.1f} ms".format
            out.append(
                f"| {r['model']} | {ins} | {s['int8']} | {s['requests']} | {s['errors']} | "
                f"{ms(s['p50_ms']) if s['p50_ms'] is not None else 'failed (exit ' + str(s['exit']) + ')'} | "
                f"{ms(s['p95_ms']) if s['p95_ms'] is not None else '-'} |"
            )
        out += [
            "",
            f"Load: `{rows[0]['service']['command']}` (URL and output folder vary)."
            if rows and rows[0].get("service")
            else "",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=None, help="write OUT/README.md and OUT/results.json"
    )
    ap.add_argument("--models", nargs="*", default=list(PAIRS))
    ap.add_argument("--limit", type=int, default=10_000, help="test samples for graph checks")
    ap.add_argument("--rps", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--no-serve", action="store_true")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    rows = []
    for name in args.models:
        float_run, pq_run, factory = PAIRS[name]
        missing = [r for r in (float_run, pq_run) if not (Path(r) / "result.json").exists()]
        if missing:
            print(f"{name}: skipped, no finished run in {missing}", file=sys.stderr)
            continue
        t0 = time.time()
        rows.append(measure(name, Path(float_run), Path(pq_run), factory, args))
        print(f"{name}: measured in {time.time() - t0:.0f} s", file=sys.stderr)
    meta = {
        "cpu": _cpu(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": "python benchmarks/your_model.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    text = render(rows, meta)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(
            json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
        )
        (args.out / "README.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
