"""Freezing the first layers of a model (e.g. a pretrained teacher fine-tuned on new data)."""

from __future__ import annotations

import math

from torch import nn

from pqcompress.errors import ConfigError


def freeze_leading(model: nn.Module, layers: int | float) -> list[str]:
    """Freeze (``requires_grad=False``) the first ``layers`` layers that own parameters, in
    module order; a float in (0, 1) is a fraction of them. Returns the frozen layers' names."""
    owners = [
        name
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    if isinstance(layers, bool) or not isinstance(layers, (int, float)) or layers < 0:
        raise ConfigError(f"freeze={layers!r} must be a layer count >= 0 or a fraction in (0, 1)")
    count = (
        math.floor(layers * len(owners))
        if isinstance(layers, float) and layers < 1
        else int(layers)
    )
    if count > len(owners):
        raise ConfigError(f"freeze={layers} but the model has only {len(owners)} layers")
    frozen = owners[:count]
    modules = dict(model.named_modules())
    for name in frozen:
        for p in modules[name].parameters(recurse=False):
            p.requires_grad_(False)
    return frozen
