"""AMC-1D for modulation classification from I/Q frames: six conv blocks and three dense layers."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models.registry import register_model
from pqcompress.models.shapes import check_input_shape, flatten_size
from pqcompress.models.weight_init import init_glorot

BLOCKS = 6
FILTERS = 40
KERNEL = 4
HIDDEN = 128
# Symmetric padding 2 gives length + 1 outputs for kernel 4, so each MaxPool1d(2) halves an
# even length exactly (1024 -> 512 -> ... -> 16). padding="same" would do too, but PyTorch
# warns for even kernels and some exporters reject string padding.
PADDING = 2


class AMC1D(nn.Module):
    """``features`` (6 x [Conv1d 40x4, BatchNorm1d, ReLU, MaxPool1d 2]), flatten, ``classifier``."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for _ in range(BLOCKS):
            layers += [
                nn.Conv1d(channels, FILTERS, KERNEL, padding=PADDING),
                nn.BatchNorm1d(FILTERS),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            channels = FILTERS
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        flat = flatten_size(self.features, input_shape)
        self.classifier = nn.Sequential(
            nn.Linear(flat, HIDDEN),
            nn.BatchNorm1d(HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.BatchNorm1d(HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model("amc1d", default_input_shape=(2, 1024))
def amc1d(*, num_classes: int, input_shape: tuple[int, ...]) -> AMC1D:
    """AMC-1D of the modulation study; input (2, L) I/Q with L >= 64 (the study: L = 1024, 7 classes).

    The dense layers use BatchNorm1d, so train it with batches of 2 or more.
    """
    check_input_shape("amc1d", input_shape, rank=2, min_size=2**BLOCKS)
    return init_glorot(AMC1D(num_classes, input_shape))
