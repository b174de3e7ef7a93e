"""The P->Q pass with channel granularity against element granularity: the compressor's time
per step (``Compressor.step()`` after an optimizer step that changed nothing, median of
rounds, one thread, in one process), cnn5 and resnet20 at 4 bits. Element: the grid's
``target_density`` setting; channel: ``target_flops`` 0.25 (channels chosen every
``SOLVE_EVERY`` steps, pruned channels' float weights parked).

    python benchmarks/channel_overhead.py --table benchmarks/results/channel_overhead.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def _per_step_ms(name: str, settings: dict, rounds: int) -> float:
    from pqcompress.aware.compressor import Compressor
    from pqcompress.config import CompressionConfig
    from pqcompress.models import build_model

    model = build_model(name, num_classes=10, input_shape=(3, 32, 32))
    comp = Compressor(
        model, CompressionConfig(bits=4, **settings), example_inputs=torch.randn(2, 3, 32, 32)
    )
    comp.apply()
    times = []
    for _ in range(rounds):  # a window of SOLVE_EVERY steps: the choosing step included
        start = time.perf_counter()
        for _ in range(Compressor.SOLVE_EVERY):
            comp.step()
        times.append((time.perf_counter() - start) / Compressor.SOLVE_EVERY)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args(argv)
    from pqcompress.cpus import cpu_model

    torch.set_num_threads(1)
    element = {
        "cnn5": {"target_density": 0.1, "solve_min_share": 0.05},
        "resnet20": {"target_density": 0.3},
    }
    lines = [
        "# The P->Q pass per step: channel vs element granularity",
        "",
        f"{cpu_model()}, one thread, median of {args.rounds} windows of "
        "Compressor.SOLVE_EVERY steps (ms per step).",
        "",
        "| model | element ms | channel ms | channel / element |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, settings in element.items():
        e = _per_step_ms(name, settings, args.rounds)
        c = _per_step_ms(name, {"granularity": "channel", "target_flops": 0.25}, args.rounds)
        lines.append(f"| {name} | {e:.2f} | {c:.2f} | {c / e:.2f}x |")
    text = "\n".join(lines) + "\n"
    if args.table:
        args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
