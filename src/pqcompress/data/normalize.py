"""Per-channel normalization of raw samples: fitted statistics, the fused scale/shift, JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Normalization:
    """``x_model = (x_raw / pixel_scale - mean[c]) / std[c]`` for every channel ``c``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 255.0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have one value per channel")
        if any(not s > 0 for s in self.std) or not self.pixel_scale > 0:
            raise ValueError("std and pixel_scale must be > 0")

    @classmethod
    def identity(cls, channels: int) -> Normalization:
        """No-op normalization (already scaled float data such as I/Q frames)."""
        return cls((0.0,) * channels, (1.0,) * channels, 1.0)

    @classmethod
    def fit(cls, x: Tensor, pixel_scale: float = 255.0) -> Normalization:
        """Per-channel mean/std of ``x`` (N, C, ...) in units of ``x / pixel_scale``.

        uint8 data is summarised through per-channel 256-bin histograms (exact, no float copy).
        """
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError("fit needs a non-empty (N, C, ...) tensor")
        means, stds = [], []
        for c in range(x.shape[1]):
            channel = x[:, c].reshape(-1)
            if channel.dtype == torch.uint8:
                hist = torch.bincount(channel, minlength=256).double()
                values = torch.arange(256, dtype=torch.float64)
                n = hist.sum()
                mean = (hist * values).sum() / n
                var = (hist * values.square()).sum() / n - mean.square()
            else:
                channel = channel.double()
                mean, var = channel.mean(), channel.var(unbiased=False)
            std = float(var.clamp_min(0.0).sqrt())
            means.append(float(mean) / pixel_scale)
            stds.append(max(std / pixel_scale, 1e-8))
        return cls(tuple(means), tuple(stds), float(pixel_scale))

    @property
    def channels(self) -> int:
        return len(self.mean)

    def scale_shift(self, ndim: int) -> tuple[Tensor, Tensor]:
        """``(scale, shift)`` shaped to broadcast over a batch of ``ndim`` dims: x*scale + shift."""
        shape = (1, self.channels) + (1,) * (ndim - 2)
        std = torch.tensor(self.std, dtype=torch.float64)
        mean = torch.tensor(self.mean, dtype=torch.float64)
        scale = (1.0 / (self.pixel_scale * std)).float().reshape(shape)
        shift = (-mean / std).float().reshape(shape)
        return scale, shift

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for ``DataBundle.preprocessing``."""
        return {
            "mean": [round(m, 6) for m in self.mean],
            "std": [round(s, 6) for s in self.std],
            "pixel_scale": self.pixel_scale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        return cls(tuple(data["mean"]), tuple(data["std"]), float(data.get("pixel_scale", 255.0)))
