"""Helpers for the training-loop tests: tiny synthetic data, a dropout MLP, a stand-in compressor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from pqcompress.config import CompressionConfig, TrainConfig
from pqcompress.data.bundle import DataBundle
from pqcompress.metrics.sparsity import compressible_weights, model_density
from pqcompress.train import Trainer

FEATURES, CLASSES = 16, 3


def make_bundle(*, with_val: bool = True, seed: int = 123) -> DataBundle:
    """Three overlapping Gaussian blobs in 16-d: learnable, with test accuracy that moves."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(CLASSES, FEATURES, generator=g) * 0.6

    def split(n: int) -> TensorDataset:
        y = torch.randint(0, CLASSES, (n,), generator=g)
        x = centers[y] + torch.randn(n, FEATURES, generator=g) * 1.5
        return TensorDataset(x.float(), y.long())

    return DataBundle(
        name="blobs",
        train=split(96),
        val=split(48) if with_val else None,
        test=split(48),
        num_classes=CLASSES,
        input_shape=(FEATURES,),
        class_names=[f"c{i}" for i in range(CLASSES)],
    )


def make_model(seed: int = 0) -> nn.Module:
    """Linear, ReLU, Dropout, Linear: dropout makes the global RNG state matter on resume."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(FEATURES, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, CLASSES)
    )


@dataclass
class FakeStats:
    name: str
    numel: int
    sparsity: float
    levels: int
    threshold: float
    scale: float
    alpha: float
    bits: int


class FakeCompressor:
    """Stand-in with the Compressor interface: prunes |w| < alpha * std (no quantization).

    It counts calls so tests can check the schedule, and its state must survive a resume.
    """

    def __init__(self, model: nn.Module, cfg: CompressionConfig) -> None:
        self.model, self.config = model, cfg
        self.steps = self.epoch_ends = self.applies = 0

    def step(self) -> None:
        self.steps += 1
        if self.config.schedule == "step":
            self.apply()

    def epoch_end(self) -> None:
        self.epoch_ends += 1
        if self.config.schedule == "epoch":
            self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        self.applies += 1
        for _, w in compressible_weights(self.model):
            w[w.abs() < self.config.alpha * w.std()] = 0.0

    def stats(self) -> list[FakeStats]:
        return [
            FakeStats(name, w.numel(), 1 - float((w != 0).float().mean()), 0, 0.0, 0.0, 0.0, 32)
            for name, w in compressible_weights(self.model)
        ]

    def density(self) -> float:
        return model_density(self.model)

    def channel_records(self) -> list[dict[str, Any]]:
        return []

    def channel_summary(self) -> dict[str, Any] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "epoch_ends": self.epoch_ends, "applies": self.applies}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.epoch_ends = state["steps"], state["epoch_ends"]
        self.applies = state["applies"]


def make_trainer(
    out_dir: Path | None,
    *,
    epochs: int = 3,
    resume: bool = False,
    compression: CompressionConfig | None = None,
    with_val: bool = True,
    **train_kwargs: Any,
) -> Trainer:
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=16,
        lr=train_kwargs.pop("lr", 0.05),
        device="cpu",
        seed=train_kwargs.pop("seed", 7),
        threads=train_kwargs.pop("threads", 1),
        **train_kwargs,
    )
    return Trainer(
        make_model(),
        make_bundle(with_val=with_val),
        cfg,
        compression,
        out_dir,
        progress=False,
        resume=resume,
    )
