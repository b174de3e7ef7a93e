"""Distillation with cached teacher logits vs live teachers vs the student alone, one run.

All three train the same student (student_cnn) with the same Trainer on the same PneumoniaMNIST
batches (augmentation on) for the same number of steps; the figure is the Trainer's own
``train_time_s`` per epoch (the training loop, not the evaluation). Rounds interleave the three;
medians are reported, with the one-time cost of filling the cache (one pass of every teacher over
the training set) beside them. The teachers are the trained members of a ``pqcompress distill``
folder (``--teachers DIR``), or fresh registry models (the timing does not depend on weights).

    python benchmarks/distill_cache.py --teachers runs/distill-pneumonia --rounds 3 \
        --json benchmarks/results/distill_cache.json
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

from pqcompress import codec
from pqcompress.config import DataConfig, TrainConfig
from pqcompress.data.registry import build_dataset
from pqcompress.distill import DistillationCriterion, DistillationLoss, TeacherEnsemble
from pqcompress.distill.cache import teacher_logits
from pqcompress.models import build_model
from pqcompress.train import Trainer

TEACHERS = ("resnet20", "cnn5", "vgg11_bn")


def teachers(folder: str | None, bundle) -> TeacherEnsemble:
    members = {}
    for name in TEACHERS:
        path = Path(folder or "-") / "teachers" / name / "model.pqz"
        if folder and path.is_file():
            members[name] = codec.load(path).eval()
        else:
            torch.manual_seed(0)
            members[name] = build_model(
                name, num_classes=bundle.num_classes, input_shape=tuple(bundle.input_shape)
            ).eval()
    return TeacherEnsemble(members, "mean")


def epoch_seconds(bundle, cfg: TrainConfig, criterion) -> float:
    torch.manual_seed(0)
    student = build_model(
        "student_cnn", num_classes=bundle.num_classes, input_shape=tuple(bundle.input_shape)
    )
    t = Trainer(student, bundle, cfg, None, None, progress=False, criterion=criterion)
    t.fit()
    return statistics.median(r["train_time_s"] for r in t.history.rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", default=None, help="a pqcompress distill folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    bundle = build_dataset("pneumonia", DataConfig(), seed=0)
    small_test = bundle.test.select(torch.arange(64))
    bundle = dataclasses.replace(bundle, val=None, test=small_test)
    ens = teachers(args.teachers, bundle)
    cfg = TrainConfig(epochs=args.epochs, batch_size=32, optimizer="adam", lr=1e-3, seed=0)
    loss = DistillationLoss(4.0, 0.9, 0.1)

    t0 = time.perf_counter()
    logits = teacher_logits(ens, bundle.train)
    fill_s = time.perf_counter() - t0
    cached_train = bundle.train.with_extra("teacher", logits).with_target_extra("teacher")
    cached_bundle = dataclasses.replace(bundle, train=cached_train)

    variants = {
        "student alone (cross-entropy)": (bundle, None),
        "distilled, cached teacher logits": (cached_bundle, DistillationCriterion(loss)),
        "distilled, live teachers every batch": (bundle, DistillationCriterion(loss, teacher=ens)),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (b, crit) in variants.items():
            times[name].append(epoch_seconds(b, cfg, crit))
    base = statistics.median(times["student alone (cross-entropy)"])
    rows = []
    print(f"{'variant':<40} {'s/epoch':>8} {'ratio':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {"variant": name, "epoch_s": med, "ratio_to_student_alone": med / base, "rounds": ts}
        )
        print(f"{name:<40} {med:8.2f} {med / base:7.2f}")
    print(f"{'filling the cache (once, 3 teachers)':<40} {fill_s:8.2f} {fill_s / base:7.2f}")
    if args.json:
        out = {
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads",
            "train_images": len(bundle.train),
            "teachers": list(TEACHERS),
            "trained_teachers": bool(args.teachers),
            "cache_fill_s": fill_s,
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
