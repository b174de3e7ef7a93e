"""Tiny real models (a few thousand parameters) for fast tests of training, compression and codecs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


class TinyMLP(nn.Module):
    """Flatten, Linear, ReLU, Linear: 2,410 parameters with the defaults (8x8 digits, 10 classes)."""

    def __init__(self, in_features: int = 64, hidden: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(x))


class TinyConvNet(nn.Module):
    """Conv3x3 + BatchNorm + ReLU + MaxPool, then Linear, for 8x8 images: 2,762 parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> None:
        super().__init__()
        channels = 16
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        pooled = image_size // 2
        self.classifier = nn.Sequential(nn.Linear(channels * pooled * pooled, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def write_tiny_pneumonia(
    folder: str | os.PathLike[str],
    sizes: tuple[int, int, int] = (64, 24, 32),
    *,
    image_size: int = 16,
    seed: int = 0,
) -> Path:
    """Write a learnable stand-in ``pneumoniamnist.npz`` (train/val/test ``sizes``) into
    ``folder``: noise images, class 1 with a bright square in the middle. Returns its path."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    lo, hi = image_size // 4, image_size - image_size // 4
    for split, n in zip(("train", "val", "test"), sizes):
        y = rng.integers(0, 2, size=(n, 1))
        x = rng.integers(0, 80, size=(n, image_size, image_size)).astype(np.uint8)
        x[y[:, 0] == 1, lo:hi, lo:hi] += 120
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y.astype(np.uint8)
    path = Path(folder) / "pneumoniamnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
