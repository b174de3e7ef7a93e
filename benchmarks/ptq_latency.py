"""Post-training quantization latency: vgg16_cifar float32 eager vs each post-training variant
(torch dynamic int8, torch static int8 FX, float16, ONNX Runtime float32, ONNX Runtime int8
QDQ), batch 1 and batch 64, all in one process, median of rounds, ratio to float32 eager.

    nice -n 19 python benchmarks/ptq_latency.py --threads 1 \
        --table benchmarks/results/ptq_latency.md

Latency only: the model is untrained (random init, BatchNorm statistics from random data);
int8 activations are calibrated on random batches. Agreement of top-1 with float32 eager on a
random batch is reported as a sanity check, not as accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def _once(model: Callable[[torch.Tensor], object], x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vgg16_cifar")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds1", type=int, default=30, help="rounds at batch 1")
    ap.add_argument("--rounds64", type=int, default=7, help="rounds at batch 64")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calibration-batches", type=int, default=4)
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--table", default=None, help="write a markdown table here")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--note", default="", help="a line for the table (e.g. machine load)")
    args = ap.parse_args(argv)

    from pqcompress.export import export_onnx, load_onnx
    from pqcompress.models.registry import build_model, default_input_shape
    from pqcompress.posttrain import quantize_dynamic_int8, quantize_static_int8, to_float16

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = default_input_shape(args.model)
    model = build_model(args.model, num_classes=10, input_shape=shape)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model.train()
        for _ in range(3):
            model(torch.randn(32, *shape))
    model.eval()
    calib = [torch.randn(32, *shape) for _ in range(args.calibration_batches)]
    x64 = torch.randn(64, *shape)
    x1 = x64[:1]

    tmp = tempfile.TemporaryDirectory(prefix="ptq-latency-")
    build_s: dict[str, float] = {}

    def timed(name: str, make: Callable[[], object]) -> object:
        start = time.perf_counter()
        out = make()
        build_s[name] = time.perf_counter() - start
        return out

    def ort(int8: bool, codes: bool = False) -> object:
        name = "codes.onnx" if codes else ("int8.onnx" if int8 else "f32.onnx")
        path = Path(tmp.name) / name
        net, comp = model, None
        if codes:  # post-training uniform 8-bit quantization: the int8 weights are its codes
            import copy

            from pqcompress.aware.compressor import Compressor
            from pqcompress.config import CompressionConfig

            net = copy.deepcopy(model)
            comp = Compressor(
                net, CompressionConfig(form="uniform", bits=8, alpha=0.0, backend="torch")
            )
            comp.apply()
        calibration = calib if int8 else None
        export_onnx(
            net, path, input_shape=shape, int8=int8, calibration=calibration, compressed=comp
        )
        m = load_onnx(path, threads=args.threads)
        build_s[name.replace(".onnx", "") + " session"] = m.load_s
        return m

    makers: dict[str, Callable[[], object]] = {
        "float32 eager": lambda: model,
        "torch dynamic int8 (linear)": lambda: quantize_dynamic_int8(model),
        "torch static int8 (FX)": lambda: quantize_static_int8(model, calib),
        "torch float16": lambda: to_float16(model),
        "ORT float32": lambda: ort(False),
        "ORT int8 QDQ": lambda: ort(True),
        "ORT int8 QDQ, uniform-8 codes (BN unfolded)": lambda: ort(True, codes=True),
    }
    names = [n for n in makers if args.only is None or n in args.only or n == "float32 eager"]
    built: dict[str, object] = {}
    agree: dict[str, float] = {}
    with torch.no_grad():
        ref = model(x64).argmax(1)
        for name in names:
            m = timed(name, makers[name])
            built[name] = m
            agree[name] = float((m(x64).argmax(1) == ref).float().mean())
            for _ in range(args.warmup):
                m(x1)
            m(x64)
        # round-robin: every round times each variant once, so a change in the machine's
        # load hits all variants alike (the machine may be shared)
        t1: dict[str, list[float]] = {n: [] for n in names}
        t64: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds1):
            for name in names:
                t1[name].append(_once(built[name], x1))
        for r in range(args.rounds64):
            for name in names:
                # float16 runs ~30x slower on CPUs without native fp16 math: fewer rounds
                if "float16" in name and r >= 3:
                    continue
                t64[name].append(_once(built[name], x64))
    rows = []
    for name in names:
        b1 = 1e3 * statistics.median(t1[name])
        b64 = 1e3 * statistics.median(t64[name])
        rows.append({"variant": name, "batch1_ms": b1, "batch64_ms": b64, "agree": agree[name]})
        print(f"{name:45s} b1 {b1:9.2f} ms  b64 {b64:9.1f} ms  top-1 agree {agree[name]:.3f}")
    base = rows[0]
    for r in rows:
        r["speedup1"] = base["batch1_ms"] / r["batch1_ms"]
        r["speedup64"] = base["batch64_ms"] / r["batch64_ms"]
    info = {
        "model": args.model,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "build_s": build_s,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    if args.table:
        lines = [
            f"# Post-training quantization latency ({args.model}, CPU)",
            "",
            f"`nice -n 19 python benchmarks/ptq_latency.py --threads {args.threads} "
            f"--table {args.table}`",
            "",
            f"torch {torch.__version__}, onnxruntime {info.get('onnxruntime', '-')}, "
            f"{args.threads} intra-op thread(s), {os.cpu_count()} cores; median of "
            f"{args.rounds1} rounds (batch 1) / {args.rounds64} rounds (batch 64; float16: "
            f"{min(args.rounds64, 3)}), same process, round-robin (each round times every variant once). "
            "Untrained model; 'agree' is top-1 agreement with float32 eager on a random batch.",
            "",
        ]
        if args.note:
            lines += [args.note, ""]
        lines += [
            "| variant | batch 1 ms | x vs fp32 | batch 64 ms | x vs fp32 | top-1 agree |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            lines.append(
                f"| {r['variant']} | {r['batch1_ms']:.2f} | {r['speedup1']:.2f} | "
                f"{r['batch64_ms']:.1f} | {r['speedup64']:.2f} | {r['agree']:.3f} |"
            )
        lines += [
            "",
            "Build / session-load seconds: "
            + ", ".join(f"{k} {v:.2f}" for k, v in build_s.items()),
            "",
        ]
        Path(args.table).write_text("\n".join(lines))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
