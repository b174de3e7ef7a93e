"""A MobileNetV2-style network for 32x32 images, written as a user would write it.

Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project), BatchNorm, ReLU6 and
residual additions, as in Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks" (CVPR 2018), with the CIFAR adaptation of a stride-1 stem. Nothing in it knows
about pqcompress: ``pqcompress train --model examples.mobilenet:build`` imports it.
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2,
# with the first two strides set to 1 for 32x32 inputs.
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _round(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [
                nn.Conv2d(cin, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(inplace=True),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(
        self, num_classes: int = 10, width: float = 1.0, in_channels: int = 3, dropout: float = 0.2
    ) -> None:
        super().__init__()
        stem = _round(32 * width)
        last = _round(1280 * max(1.0, width))
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU6(inplace=True),
        ]
        cin = stem
        for t, c, n, s in SETTINGS:
            cout = _round(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [
            nn.Conv2d(cin, last, 1, bias=False),
            nn.BatchNorm2d(last),
            nn.ReLU6(inplace=True),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.classifier(x.mean((2, 3)))


def build(
    num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32), width: float = 1.0
) -> MobileNetV2:
    """The factory ``--model examples.mobilenet:build`` calls (``--model-args '{"width": 0.5}'``)."""
    return MobileNetV2(num_classes=num_classes, width=width, in_channels=input_shape[0])
