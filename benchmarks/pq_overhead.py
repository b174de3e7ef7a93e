"""Cost of the compressor pass relative to a training step (batch 64), same process, same model.

For each model and optimizer: median over interleaved rounds of (a) a plain training step and
(b) one separate ``Compressor.step()`` after it (``fuse_steps=False``: the optimizer's own
step, then the pass) for the default backend (numba kernels on the CPU, the device-resident
path on CUDA), the eager torch backend, and a naive per-layer Python loop with ``.item()``
calls (the baseline the issue names); and, on the CPU, (c) the fused step: what the loop
``opt.step(); comp.step()`` runs with a torch SGD/Adam/AdamW (through the compressor's step
hooks), reached here by ``pqcompress.fuse(opt, comp)`` (PQSGD, PQAdam or PQAdamW, what the
Trainer uses). Its cost is the median over rounds of (the fused optimizer step, P->Q
included) minus (the torch optimizer's step), both on the same gradients in the same round.
Reports each as a percentage of the plain step.

    python benchmarks/pq_overhead.py --models vgg16_cifar cnn5 --rounds 15
    python benchmarks/pq_overhead.py --models vgg16_cifar --optimizers adam adamw
    python benchmarks/pq_overhead.py --device cuda --models vgg16_cifar resnet50 --batch 128
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pqcompress import CompressionConfig, Compressor, fuse
from pqcompress.models import build_model


def naive_pq_(model: torch.nn.Module, alpha: float, bits: int) -> None:
    """The straightforward implementation: a Python loop, several passes and .item() per layer."""
    L = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                beta = alpha * w.std().item()
                mx = w.abs().max().item()
                q = (mx - beta) / L
                keep = w.abs() >= beta
                mag = beta + q * torch.round((w.abs() - beta) / q).clamp(0, L)
                w.copy_(torch.where(keep, torch.sign(w) * mag, torch.zeros_like(w)))


OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01),
}


def bench_model(
    name: str,
    rounds: int,
    batch: int,
    alpha: float,
    bits: int,
    update: str,
    optimizer: str = "sgd",
    device: str = "cpu",
) -> dict:
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(name, num_classes=10, input_shape=(3, 32, 32)).to(dev)
    opt = OPTIMIZERS[optimizer](model.parameters())
    x = torch.randn(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    default = "numba" if dev.type == "cpu" else "auto"  # CUDA: the device-resident path
    # fuse_steps=False: these measure the separate pass, and their step hooks must not fuse
    # the other rows' optimizer steps
    comps = {
        backend: Compressor(
            model,
            CompressionConfig(alpha=alpha, bits=bits, update=update, backend=backend),
            fuse_steps=False,
        )
        for backend in (default, "torch")
    }
    where = "numba" if dev.type == "cpu" else "device-resident"
    passes = {
        f"{where} pass after {optimizer} (fuse_steps=False)": comps[default].step,
        "eager torch ops": comps["torch"].step,
        "naive loop with .item()": lambda: naive_pq_(model, alpha, bits),
    }
    fused_opt = fused_comp = None
    if dev.type == "cpu":
        # the fused optimizer: what the README loop runs through the compressor's step hooks
        # (the same code, reached by fuse() here so that no hook touches the other rows)
        fused_comp = Compressor(
            model, CompressionConfig(alpha=alpha, bits=bits, update=update), fuse_steps=False
        )
        fused_opt = fuse(OPTIMIZERS[optimizer](model.parameters()), fused_comp)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step(optimizer: torch.optim.Optimizer = opt) -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up, numba compilation
        train_step()
        for fn in passes.values():
            fn()
        if fused_opt is not None:
            train_step(fused_opt)
            fused_comp.step()
    steps: list[float] = []
    fused: list[float] = []
    paired: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in passes}
    for _ in range(rounds):
        for label, fn in passes.items():
            sync()
            t0 = time.perf_counter()
            train_step()
            sync()
            t1 = time.perf_counter()
            fn()
            sync()
            t2 = time.perf_counter()
            steps.append(t1 - t0)
            times[label].append(t2 - t1)
        if fused_opt is None:
            continue
        # the optimizer steps alone, on the same gradients: torch's, then the fused one (its
        # update and the P->Q application); forward and backward, identical for both, are
        # left out so their spread does not drown the difference
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        t1 = time.perf_counter()
        fused_opt.step()
        fused_comp.step()
        t2 = time.perf_counter()
        fused.append(t2 - t1)
        paired.append((t2 - t1) - (t1 - t0))  # fused step minus torch's, same gradients
    step = statistics.median(steps)
    params = sum(p.numel() for p in model.parameters())
    fused_row = {}
    if paired:
        extra = statistics.median(paired)
        fused_row = {
            f"{type(fused_opt).__name__} (README loop, fuse(), Trainer)": {
                "ms": 1000 * extra,
                "pct_of_step": 100 * extra / step,
                "fused_step_ms": 1000 * statistics.median(fused),
            }
        }
    return {
        "model": name,
        "params": params,
        "batch": batch,
        "rounds": rounds,
        "update": update,
        "optimizer": optimizer,
        "device": str(dev),
        "step_ms": 1000 * step,
        "passes": {
            **fused_row,
            **{
                k: {
                    "ms": 1000 * statistics.median(v),
                    "pct_of_step": 100 * statistics.median(v) / step,
                }
                for k, v in times.items()
            },
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=["vgg16_cifar", "cnn5"])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument(
        "--update", choices=["inplace", "latent"], nargs="+", default=["inplace", "latent"]
    )
    ap.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS), default=["sgd"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    rows = []
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    for name in args.models:
        for optimizer in args.optimizers:
            for update in args.update:
                r = bench_model(
                    name, args.rounds, args.batch, args.alpha, args.bits, update, optimizer,
                    args.device,
                )  # fmt: skip
                rows.append(r)
                print(
                    f"\n{name} ({r['params']:,} params) on {r['device']}, batch {r['batch']}, "
                    f"{optimizer}, update={update}: train step {r['step_ms']:.1f} ms "
                    f"(median of {r['rounds']})"
                )
                for label, v in r["passes"].items():
                    print(f"  {label:<46} {v['ms']:8.2f} ms  {v['pct_of_step']:6.2f}% of a step")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
