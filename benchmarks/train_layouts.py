"""A training step under P->Q (the Trainer's path: the fused optimizer) per memory layout and
precision, against float32 in the contiguous layout, same process, interleaved rounds.

The four variants are the Trainer's ``train.channels_last`` x ``train.amp`` (off, bf16): the
model's 4-D weights in the channels_last layout (which oneDNN's convolutions prefer), and
the forward pass and loss under bfloat16 autocast (weights, optimizer and P->Q in float32).

    python benchmarks/train_layouts.py --models resnet20 cnn5 --rounds 9
    python benchmarks/train_layouts.py --device cuda --models resnet20 resnet50 --batch 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pqcompress import CompressionConfig, Compressor, fuse
from pqcompress.models import build_model

VARIANTS = [("contiguous", "off"), ("channels_last", "off"), ("contiguous", "bf16"),
            ("channels_last", "bf16")]  # fmt: skip


def make_step(name: str, layout: str, amp: str, batch: int, device: torch.device):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, 32, 32)).to(device)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    opt = fuse(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), comp)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        comp.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def bench(name: str, rounds: int, batch: int, device: str = "cpu") -> dict:
    dev = torch.device(device)
    steps = {v: make_step(name, *v, batch, dev) for v in VARIANTS}
    for fn in steps.values():  # warm-up: numba compilation, oneDNN primitives
        for _ in range(2):
            fn()
    times: dict[tuple[str, str], list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[v].append(time.perf_counter() - t0)
    base = statistics.median(times[VARIANTS[0]])
    return {
        "model": name,
        "batch": batch,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "device": device,
        "rows": [
            {
                "layout": layout,
                "amp": amp,
                "step_ms": 1000 * statistics.median(times[(layout, amp)]),
                "speedup": base / statistics.median(times[(layout, amp)]),
            }
            for layout, amp in VARIANTS
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=["resnet20", "cnn5"])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    out = []
    for name in args.models:
        r = bench(name, args.rounds, args.batch, args.device)
        out.append(r)
        print(f"\n{name}, batch {r['batch']}, {r['threads']} threads, median of {r['rounds']}:")
        for row in r["rows"]:
            print(
                f"  {row['layout']:<14} amp={row['amp']:<5} {row['step_ms']:8.1f} ms  "
                f"{row['speedup']:.2f}x"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
