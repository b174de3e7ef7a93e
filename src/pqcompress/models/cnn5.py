"""CNN5 of the grid study: five conv layers with BatchNorm, two max-pools, four dense layers."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models.options import check_dropout, check_width, scaled
from pqcompress.models.registry import register_model
from pqcompress.models.shapes import check_input_shape, flatten_size
from pqcompress.models.weight_init import init_glorot

# Pools after the 2nd and 4th conv: 32x32 -> 8x8 (flatten 8192), 28x28 -> 7x7, 8x8 -> 2x2.
CONV_CHANNELS = (32, 32, 64, 64, 128)
POOL_AFTER = (1, 3)
HIDDEN = (240, 120, 60)


class CNN5(nn.Module):
    """``features`` (5 x conv3x3 + BatchNorm + ReLU, 2 max-pools), flatten, ``classifier``."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        *,
        dropout: float = 0.3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for index, out in enumerate(scaled(c, width) for c in CONV_CHANNELS):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            if index in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        head: list[nn.Module] = []
        features = flatten_size(self.features, input_shape)
        for hidden in (scaled(h, width) for h in HIDDEN):
            head += [nn.Linear(features, hidden), nn.ReLU()]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            features = hidden
        head.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model("cnn5")
def cnn5(
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    dropout: float = 0.3,
    width: float = 1.0,
) -> CNN5:
    """CNN5: about 2.1M parameters on 3x32x32 (most in the first dense layer); works down to 4x4.

    ``width`` scales every conv and hidden dense width; ``dropout`` follows each hidden dense layer.
    """
    check_input_shape("cnn5", input_shape, rank=3, min_size=4)
    model = CNN5(
        num_classes,
        input_shape,
        dropout=check_dropout("cnn5", dropout),
        width=check_width("cnn5", width),
    )
    return init_glorot(model)
