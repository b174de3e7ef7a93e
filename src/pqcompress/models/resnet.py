"""CIFAR-style ResNets: resnet20/56 (basic blocks, He et al. 2016) and a CIFAR ResNet-50."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from pqcompress.models.registry import register_model
from pqcompress.models.shapes import check_input_shape
from pqcompress.models.weight_init import init_he


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """Shortcut option B: 1x1 conv + BatchNorm when the shape changes, identity otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; output channels = ``channels``."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = projection(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, each with BatchNorm."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Sequential):
    """Stem conv3x3 (stride 1, no max-pool), stages ``layer1..N``, global avg-pool, ``fc``.

    A named Sequential, so names match torchvision (``conv1``, ``layer2.0.downsample.0``,
    ``fc``) and the forward pass is plain enough for torch.jit.script and torch.export.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        num_classes: int,
        in_channels: int,
    ) -> None:
        layers: dict[str, nn.Module] = {
            "conv1": conv3x3(in_channels, widths[0]),
            "bn1": nn.BatchNorm2d(widths[0]),
            "relu": nn.ReLU(),
        }
        channels = widths[0]
        for index, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for position in range(depth):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(channels, width, stride))
                channels = width * block.expansion
            layers[f"layer{index + 1}"] = nn.Sequential(*blocks)
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(channels, num_classes)
        super().__init__(OrderedDict(layers))


def _build(
    name: str,
    block: type[BasicBlock | Bottleneck],
    depths: tuple[int, ...],
    widths: tuple[int, ...],
    num_classes: int,
    input_shape: tuple[int, ...],
) -> ResNet:
    check_input_shape(name, input_shape, rank=3, min_size=2 ** (len(depths) - 1))
    return init_he(ResNet(block, depths, widths, num_classes, input_shape[0]))


@register_model("resnet20")
def resnet20(*, num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-20 for CIFAR: 3 stages of 3 basic blocks (16/32/64 channels), about 0.27M parameters."""
    return _build("resnet20", BasicBlock, (3, 3, 3), (16, 32, 64), num_classes, input_shape)


@register_model("resnet56")
def resnet56(*, num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-56 for CIFAR: 3 stages of 9 basic blocks (16/32/64 channels), about 0.86M parameters."""
    return _build("resnet56", BasicBlock, (9, 9, 9), (16, 32, 64), num_classes, input_shape)


@register_model("resnet50")
def resnet50(*, num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-50 (bottlenecks 3/4/6/3) with a CIFAR stem, about 23.5M parameters for 10 classes."""
    return _build(
        "resnet50", Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), num_classes, input_shape
    )
