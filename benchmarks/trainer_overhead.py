"""The Trainer's training step against a plain PyTorch loop: same model, same batches, one run.

Both consume the same batches (``pqcompress.data.loader.make_loader`` with the same seed and
epoch, augmentation on) and do the same thing per step: forward, cross-entropy with label
smoothing, zero_grad, backward, SGD (Nesterov momentum, weight decay) and a one-cycle lr set
before every step. The Trainer's figure is its own ``train_time_s`` of the epoch (the training
loop, not the evaluation after it). Rounds alternate Trainer and plain loop; medians per step.

Rows: float32 (no compression), and the default P->Q (alpha 0.5, 8 bits, latent) where the
Trainer uses PQSGD and the plain loop calls ``Compressor.step()`` after ``torch.optim.SGD``
(whose step the compressor's step hooks fuse, as in any user's loop since they exist).

    python benchmarks/trainer_overhead.py --steps 40 --rounds 5 --json benchmarks/results/trainer_overhead.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pqcompress import CompressionConfig, Compressor
from pqcompress.config import DataConfig, TrainConfig
from pqcompress.data.loader import make_loader
from pqcompress.data.registry import build_dataset
from pqcompress.errors import DataError
from pqcompress.models import build_model
from pqcompress.train import Trainer
from pqcompress.train.optim import onecycle_lr


def load_bundle(dataset: str, train_size: int):
    try:
        bundle = build_dataset(dataset, DataConfig(subset=train_size, val_fraction=0.0), seed=0)
    except DataError:
        print(f"{dataset} not found; falling back to digits")
        bundle = build_dataset("digits", DataConfig(val_fraction=0.0), seed=0)
    small_test = bundle.test.select(torch.arange(min(256, len(bundle.test))))
    return dataclasses.replace(bundle, val=None, test=small_test)


def fresh_model(bundle, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(
        "cnn5", num_classes=bundle.num_classes, input_shape=tuple(bundle.input_shape)
    )


def plain_loop(bundle, cfg: TrainConfig, compression: CompressionConfig | None) -> float:
    """Seconds for ``cfg.max_steps_per_epoch`` steps of the textbook loop."""
    model = fresh_model(bundle)
    model.train()
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    comp = Compressor(model, compression) if compression is not None else None
    steps = cfg.max_steps_per_epoch
    assert steps is not None
    loader = make_loader(bundle.train, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=0)
    total = cfg.epochs * steps
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        lr = onecycle_lr(cfg, i / total)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if comp is not None:
            comp.step()
        if i + 1 >= steps:
            break
    return time.perf_counter() - start


def trainer_loop(bundle, cfg: TrainConfig, compression: CompressionConfig | None) -> float:
    trainer = Trainer(fresh_model(bundle), bundle, cfg, compression, None, progress=False)
    result = trainer.fit()
    return float(result.history[0]["train_time_s"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    bundle = load_bundle(args.dataset, args.batch * (args.steps + 1))
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch,
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        lr_schedule="onecycle",
        label_smoothing=0.1,
        max_steps_per_epoch=args.steps,
        device="cpu",
    )
    settings = {"float32": None, "P->Q default (alpha 0.5, 8 bits)": CompressionConfig()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}; cnn5 on {bundle.name}, batch "
        f"{args.batch}, {args.steps} steps per measurement, {args.rounds} rounds"
    )
    rows = []
    for label, compression in settings.items():
        plain_loop(bundle, cfg, compression)  # warm-up (numba compilation, allocator)
        trainer_loop(bundle, cfg, compression)
        plain, ours = [], []
        for _ in range(args.rounds):
            ours.append(trainer_loop(bundle, cfg, compression) / args.steps)
            plain.append(plain_loop(bundle, cfg, compression) / args.steps)
        p, t = statistics.median(plain), statistics.median(ours)
        row = {
            "setting": label,
            "plain_step_ms": 1000 * p,
            "trainer_step_ms": 1000 * t,
            "ratio": t / p,
            "plain_rounds_ms": [1000 * v for v in plain],
            "trainer_rounds_ms": [1000 * v for v in ours],
        }
        rows.append(row)
        print(
            f"{label:<34} plain loop {row['plain_step_ms']:7.1f} ms/step, "
            f"Trainer {row['trainer_step_ms']:7.1f} ms/step -> {row['ratio']:.3f}x"
        )
    if args.json:
        meta = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "dataset": bundle.name,
            "batch": args.batch,
            "steps": args.steps,
            "rounds": args.rounds,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
