"""The distillation student: a small CNN with four conv layers, BatchNorm and max-pooling."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models.options import check_width, scaled
from pqcompress.models.registry import register_model
from pqcompress.models.shapes import check_input_shape
from pqcompress.models.weight_init import init_glorot

# Pools after the first three convs (28 -> 14 -> 7 -> 3, 8 -> 4 -> 2 -> 1), then global
# average pooling, so the parameter count (about 30.6k for 1 channel, 2 classes) does not
# depend on the image size.
CHANNELS = (16, 32, 32, 56)
POOLED = 3


class StudentCNN(nn.Module):
    """``features`` (4 x conv3x3 + BatchNorm + ReLU, 3 max-pools, global avg-pool), ``classifier``."""

    def __init__(self, num_classes: int, in_channels: int, *, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index, out in enumerate(scaled(c, width) for c in CHANNELS):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            if index < POOLED:
                layers.append(nn.MaxPool2d(2))
            channels = out
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model("student_cnn", default_input_shape=(1, 28, 28))
def student_cnn(
    *, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0
) -> StudentCNN:
    """Student of the distillation study (PneumoniaMNIST 1x28x28, 2 classes); works down to 8x8."""
    check_input_shape("student_cnn", input_shape, rank=3, min_size=2**POOLED)
    model = StudentCNN(num_classes, input_shape[0], width=check_width("student_cnn", width))
    return init_glorot(model)
