"""DistillationCriterion in the Trainer: cached or live teachers, and it changes the student."""

from __future__ import annotations

import dataclasses

import torch

from pqcompress.config import TrainConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.bundle import DataBundle
from pqcompress.distill import (
    DistillationCriterion,
    DistillationLoss,
    TeacherEnsemble,
    teacher_logits,
)
from pqcompress.testing.tiny import TinyConvNet
from pqcompress.train.trainer import Trainer


def bundle() -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (48, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = (x.float().mean(dim=(1, 2, 3)) > 127).long()
    data = ArrayDataset(x, y)
    return DataBundle("toy", data, None, data, 2, (1, 8, 8), ["a", "b"])


def fit(b: DataBundle, criterion) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    student = TinyConvNet(num_classes=2)
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="adam", lr=0.01, seed=0)
    Trainer(student, b, cfg, None, None, progress=False, criterion=criterion).fit()
    return {k: v.clone() for k, v in student.state_dict().items()}


def test_cached_and_live_teachers_train_the_same_student_without_augmentation() -> None:
    b = bundle()
    torch.manual_seed(7)
    ens = TeacherEnsemble({"t": TinyConvNet(num_classes=2)}, "mean")
    loss = DistillationLoss(4.0, 0.9, 0.1)
    logits = teacher_logits(ens, b.train)
    cached_train = b.train.with_extra("teacher", logits).with_target_extra("teacher")
    cached = fit(dataclasses.replace(b, train=cached_train), DistillationCriterion(loss))
    live = fit(b, DistillationCriterion(loss, teacher=ens))
    for k in cached:
        assert torch.allclose(cached[k], live[k], atol=1e-5), k


def test_the_criterion_replaces_cross_entropy() -> None:
    b = bundle()
    torch.manual_seed(7)
    ens = TeacherEnsemble({"t": TinyConvNet(num_classes=2)}, "mean")
    plain = fit(b, None)
    distilled = fit(b, DistillationCriterion(DistillationLoss(4.0, 1.0, 0.0), teacher=ens))
    assert any(
        not torch.allclose(plain[k], distilled[k]) for k in plain if plain[k].is_floating_point()
    )
