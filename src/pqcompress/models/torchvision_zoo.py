"""ImageNet architectures from torchvision as distillation teachers (optional: needs torchvision).

Pretrained weights are read from the local torch hub cache only (``torch.hub.get_dir()``,
``checkpoints/``), never downloaded while a run is going; without them, or without
torchvision, the builder raises one ModelError saying what is missing. Inputs are adapted:
a grayscale image is repeated to 3 channels and resized to ``size`` (default 64) pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pqcompress.errors import ConfigError, ModelError

ARCHITECTURES = ("resnet18", "alexnet", "vgg19", "densenet121", "googlenet")


class ImageNetAdapter(nn.Module):
    """Repeats 1-channel input to 3 channels and resizes it to ``size`` before ``net``."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net, self.size = net, int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = self.net(x)
        return out.logits if hasattr(out, "logits") else out


def _replace_head(net: nn.Module, arch: str, num_classes: int) -> None:
    if arch in ("resnet18", "googlenet"):
        net.fc = nn.Linear(net.fc.in_features, num_classes)
    elif arch == "densenet121":
        net.classifier = nn.Linear(net.classifier.in_features, num_classes)
    else:  # alexnet, vgg19: the last layer of the classifier
        last = net.classifier[-1]
        net.classifier[-1] = nn.Linear(last.in_features, num_classes)


def torchvision_teacher(
    arch: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    pretrained: bool = False,
    freeze: float = 0,
    size: int = 64,
    **options: Any,
) -> nn.Module:
    """``arch`` with its last layer replaced for ``num_classes``; ImageNet weights when
    ``pretrained`` (from the local cache), the first ``freeze`` layers frozen."""
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"torchvision: {arch!r} is not offered; use one of {', '.join(ARCHITECTURES)}"
        )
    if input_shape[0] not in (1, 3):
        raise ConfigError(
            f"torchvision teachers take 1 or 3 channels, got input_shape {input_shape}"
        )
    try:
        import torchvision.models as tvm
    except ImportError:
        raise ModelError(
            f"torchvision teacher {arch!r} needs torchvision, which is not installed "
            "(pip install 'pqcompress[vision]'); or use a registry model (model: resnet20)"
        ) from None
    kwargs: dict[str, Any] = dict(options)
    if arch == "googlenet":
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", not pretrained)
    net = getattr(tvm, arch)(weights=None, **kwargs)
    if pretrained:
        net.load_state_dict(_cached_weights(tvm, arch), strict=False)
    _replace_head(net, arch, num_classes)
    model = ImageNetAdapter(net, size)
    if freeze:
        from pqcompress.models.freeze import freeze_leading

        freeze_leading(model, freeze)
    return model


def _cached_weights(tvm: Any, arch: str) -> dict[str, torch.Tensor]:
    enum = tvm.get_model_weights(arch)
    weights = enum.DEFAULT
    name = Path(weights.url).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not path.is_file():
        raise ModelError(
            f"ImageNet weights for {arch} are not in the local cache ({path}); they are never "
            "downloaded during a run: fetch them beforehand (torchvision.models."
            f"{arch}(weights='DEFAULT') on a machine with internet) or set pretrained: false"
        )
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state  # the 1000-class head is loaded too, then replaced
