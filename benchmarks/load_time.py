"""Load time of an 8-bit VGG16-CIFAR: ``pqcompress.codec.load`` of its .pqz file vs
``torch.load`` of the float32 state dict, same process, files in the page cache.

The two loads alternate for ``--rounds`` rounds after one warm-up each (which also
compiles/loads the cached numba kernels); the report gives medians and their ratio.
``codec.load`` does strictly more work than ``torch.load`` here: it also rebuilds the model
from the registry (on the meta device, then assigns the decoded tensors) and verifies every
SHA-256 checksum. Also timed: ``codec.read`` alone (tensors only, like torch.load) for the
auto-chosen file and for one file per codec, and the torch-free numpy reader
``codec.portable.read_arrays``. CPU seconds (all threads) are reported too: a shared machine
inflates wall times, not CPU time.

    nice -n 10 python benchmarks/load_time.py --out benchmarks/results/load_time.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pqcompress import codec
from pqcompress.aware.compressor import Compressor
from pqcompress.codec import portable, tensorcode
from pqcompress.config import CompressionConfig


def timed(fn, rounds: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--alpha",
        type=float,
        default=CompressionConfig().alpha,
        help="pruning alpha (default: the library default); 8 bits, exact form either way",
    )
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/load_time.md"))
    ap.add_argument("--run", type=Path, default=None, help="a run dir whose best.pt to use")
    args = ap.parse_args()
    from file_sizes import model_for

    model = model_for(args.run)
    comp = Compressor(model, CompressionConfig(alpha=args.alpha, bits=8, update="inplace"))
    comp.apply()
    state = model.state_dict()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pt = tmp / "model.pt"
        torch.save(state, pt)
        files = {}
        for layout, name in [
            ("auto", "auto"),
            ("bitmap", "zstd"),
            ("bitmap", "deflate"),
            ("bitmap", "lzma"),
        ]:
            files[(layout, name)] = codec.save(
                model,
                tmp / f"m-{layout}-{name}.pqz",
                comp,
                layout=layout,
                codec=name,
                model_name="vgg16_cifar",
                model_args=getattr(model, "pqc_model_args", None),
                num_classes=10,
            )
        loaded = codec.load(files[("auto", "auto")])
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
        # interleave: torch.load, codec.load (auto), codec.read per file
        t_torch, t_load, t_numpy = [], [], []
        cpu_torch, cpu_load = [], []  # CPU seconds of the process (all threads)
        t_read = {key: [] for key in files}
        torch.load(pt, weights_only=True)
        codec.load(files[("auto", "auto")])
        portable.read_arrays(files[("auto", "auto")])
        for key in files:
            codec.read(files[key])
        for _ in range(args.rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            torch.load(pt, weights_only=True)
            t_torch.append(time.perf_counter() - t0)
            cpu_torch.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            codec.load(files[("auto", "auto")])
            t_load.append(time.perf_counter() - t0)
            cpu_load.append(time.process_time() - c0)
            for key, path in files.items():
                t0 = time.perf_counter()
                codec.read(path)
                t_read[key].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            portable.read_arrays(files[("auto", "auto")])
            t_numpy.append(time.perf_counter() - t0)
        base = statistics.median(t_torch)
        rows.append(("torch.load (float32 state dict)", pt.stat().st_size, base))
        rows.append(
            (
                "codec.load (auto/auto, model rebuilt)",
                files[("auto", "auto")].stat().st_size,
                statistics.median(t_load),
            )
        )
        for (layout, name), ts in t_read.items():
            rows.append(
                (
                    f"codec.read ({layout}/{name})",
                    files[(layout, name)].stat().st_size,
                    statistics.median(ts),
                )
            )
        rows.append(
            (
                "portable.read_arrays (auto/auto, numpy only)",
                files[("auto", "auto")].stat().st_size,
                statistics.median(t_numpy),
            )
        )
    ratios = [b / a for a, b in zip(t_torch, t_load, strict=True)]
    lines = [
        "# Load time: 8-bit VGG16-CIFAR, .pqz vs torch.load",
        "",
        f"Model `vgg16_cifar`, {f'trained weights of {args.run}' if args.run else 'random init (seed 0)'}, `CompressionConfig(alpha={args.alpha:g}, "
        'bits=8, update="inplace")` applied once. Median of '
        f"{args.rounds} interleaved rounds after a warm-up, files in the page cache, one process, "
        f"torch threads {torch.get_num_threads()}, .pqz decode threads "
        f"{tensorcode.DECODE_THREADS}. Machine: {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (a shared machine). "
        f"Command: `python benchmarks/load_time.py{f' --run {args.run}' if args.run else ''}"
        f"{f' --alpha {args.alpha:g}' if args.alpha != CompressionConfig().alpha else ''}`.",
        "",
        f"Per-round ratio codec.load / torch.load: median {statistics.median(ratios):.2f}, "
        f"min {min(ratios):.2f}, max {max(ratios):.2f}. CPU time (all threads, median): "
        f"torch.load {statistics.median(cpu_torch):.4f} s, codec.load "
        f"{statistics.median(cpu_load):.4f} s.",
        "",
        "| what | file MB | median s | vs torch.load |",
        "| --- | --- | --- | --- |",
    ]
    for what, size, t in rows:
        lines.append(f"| {what} | {size / 1e6:.2f} | {t:.4f} | {t / base:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    record = {
        "rows": [
            {"what": w, "bytes": b, "median_s": t, "vs_torch_load": t / base} for w, b, t in rows
        ],
        "round_ratios": ratios,
        "cpu_s": {"torch_load": cpu_torch, "codec_load": cpu_load},
        "loadavg": os.getloadavg(),
        "decode_threads": tensorcode.DECODE_THREADS,
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
