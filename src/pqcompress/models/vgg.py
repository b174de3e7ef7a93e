"""VGG16 for 32x32 images exactly as in the studies (docs/method.md §4): 13 conv3x3 + 3 dense layers;
and a small VGG11-BN (a distillation teacher for 28x28 images)."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models.options import check_dropout, check_flag
from pqcompress.models.registry import register_model
from pqcompress.models.shapes import check_input_shape
from pqcompress.models.weight_init import init_glorot

POOL = "M"
VGG16_LAYOUT: tuple[int | str, ...] = (
    *(64, 64, POOL),
    *(128, 128, POOL),
    *(256, 256, 256, POOL),
    *(512, 512, 512, POOL),
    *(512, 512, 512, POOL),
)
HIDDEN = 4096
# VGG11 (configuration "A") without its last two 512-convs and pool: 4 pools, so 16x16 inputs work
VGG11_SMALL_LAYOUT: tuple[int | str, ...] = (
    *(64, POOL),
    *(128, POOL),
    *(256, 256, POOL),
    *(512, 512, POOL),
)
VGG11_HIDDEN = 512


def make_features(
    layout: tuple[int | str, ...], in_channels: int, *, batch_norm: bool = False
) -> nn.Sequential:
    """Conv3x3 (padding 1) [+ BatchNorm] + ReLU per int in ``layout``; MaxPool2d(2) per 'M'."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in layout:
        if item == POOL:
            layers.append(nn.MaxPool2d(2))
            continue
        layers.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU())
        channels = int(item)
    return nn.Sequential(*layers)


def features_out(layout: tuple[int | str, ...], input_shape: tuple[int, ...]) -> int:
    """Flattened size after ``make_features``: 3x3 convs keep the size, each pool halves (floor)."""
    channels = [int(c) for c in layout if c != POOL][-1]
    pools = layout.count(POOL)
    height, width = (size >> pools for size in input_shape[1:])
    return channels * height * width


class VGG(nn.Module):
    """``features`` (convolutions), flatten, ``classifier`` (three dense layers); returns logits."""

    def __init__(
        self,
        layout: tuple[int | str, ...],
        num_classes: int,
        input_shape: tuple[int, ...],
        *,
        batch_norm: bool = False,
        dropout: float = 0.0,
        hidden: int = HIDDEN,
    ) -> None:
        super().__init__()
        self.features = make_features(layout, input_shape[0], batch_norm=batch_norm)
        self.flatten = nn.Flatten()
        flat = features_out(layout, input_shape)
        head: list[nn.Module] = []
        for in_features in (flat, hidden):
            head += [nn.Linear(in_features, hidden), nn.ReLU()]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model("vgg16_cifar")
def vgg16_cifar(
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> VGG:
    """VGG16 of the microservice and search studies: about 33.6M parameters on 3x32x32, 10 classes.

    No BatchNorm and no dropout by default (as in the study); ``batch_norm=True`` adds
    BatchNorm2d after every conv, ``dropout`` > 0 adds Dropout after both hidden dense layers.
    """
    check_input_shape("vgg16_cifar", input_shape, rank=3, min_size=32)
    model = VGG(
        VGG16_LAYOUT,
        num_classes,
        input_shape,
        batch_norm=check_flag("vgg16_cifar", "batch_norm", batch_norm),
        dropout=check_dropout("vgg16_cifar", dropout),
    )
    return init_glorot(model)


@register_model("vgg11_bn", default_input_shape=(1, 28, 28))
def vgg11_bn(*, num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.5) -> VGG:
    """A small VGG11 with BatchNorm: 6 conv3x3 (64-128-256-256-512-512), 4 max-pools, dense
    512-512-classes with dropout; about 5.0M parameters on 1x28x28. Inputs of 16x16 and up."""
    check_input_shape("vgg11_bn", input_shape, rank=3, min_size=16)
    model = VGG(
        VGG11_SMALL_LAYOUT,
        num_classes,
        input_shape,
        batch_norm=True,
        dropout=check_dropout("vgg11_bn", dropout),
        hidden=VGG11_HIDDEN,
    )
    return init_glorot(model)
