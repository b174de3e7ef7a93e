"""Load time of an 8-bit VGG16-CIFAR: ``pqcompress.codec.load`` of its .pqz file vs
``torch.load`` of the float32 state dict, same process, files in the page cache.

The two loads alternate for ``--rounds`` rounds after one warm-up each (which also
compiles/loads the cached numba kernels); the report gives medians and their ratio.
``codec.load`` does strictly more work than ``torch.load`` here: it also rebuilds the model
from the registry (on the meta device, then assigns the decoded tensors) and verifies every
SHA-256 checksum. Also timed: ``codec.read`` alone (tensors only, like torch.load) for the
auto-chosen file and for one file per codec.

    nice -n 19 python benchmarks/load_time.py --out benchmarks/results/load_time.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pqcompress import codec
from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig
from pqcompress.models import build_model


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
    ap.add_argument("--alpha", type=float, default=1.25)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/load_time.md"))
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model("vgg16_cifar", num_classes=10, input_shape=(3, 32, 32))
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
                num_classes=10,
            )
        loaded = codec.load(files[("auto", "auto")])
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
        # interleave: torch.load, codec.load (auto), codec.read per file
        t_torch, t_load = [], []
        t_read = {key: [] for key in files}
        torch.load(pt, weights_only=True)
        codec.load(files[("auto", "auto")])
        for key in files:
            codec.read(files[key])
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            torch.load(pt, weights_only=True)
            t_torch.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            codec.load(files[("auto", "auto")])
            t_load.append(time.perf_counter() - t0)
            for key, path in files.items():
                t0 = time.perf_counter()
                codec.read(path)
                t_read[key].append(time.perf_counter() - t0)
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
    lines = [
        "# Load time: 8-bit VGG16-CIFAR, .pqz vs torch.load",
        "",
        f"Model `vgg16_cifar`, random init (seed 0), `CompressionConfig(alpha={args.alpha:g}, "
        'bits=8, update="inplace")` applied once. Median of '
        f"{args.rounds} interleaved rounds after a warm-up, files in the page cache, one process, "
        f"torch threads {torch.get_num_threads()}. Machine: {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}. "
        "Command: `nice -n 19 python benchmarks/load_time.py`.",
        "",
        "| what | file MB | median s | vs torch.load |",
        "| --- | --- | --- | --- |",
    ]
    for what, size, t in rows:
        lines.append(f"| {what} | {size / 1e6:.2f} | {t:.4f} | {t / base:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
