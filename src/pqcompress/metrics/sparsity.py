"""Density and sparsity of tensors and of a model's compressible (conv/linear) weights."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

COMPRESSIBLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
)


def tensor_density(tensor: torch.Tensor) -> float:
    """Fraction of nonzero elements (1.0 for an empty tensor)."""
    n = tensor.numel()
    return 1.0 if n == 0 else int(torch.count_nonzero(tensor)) / n


def compressible_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, weight)`` of every conv/linear layer's weight, e.g. ``("features.0.weight", W)``."""
    for name, module in model.named_modules():
        if isinstance(module, COMPRESSIBLE_TYPES) and module.weight is not None:
            yield (f"{name}.weight" if name else "weight"), module.weight


def model_density(model: nn.Module, names: Iterable[str] | None = None) -> float:
    """Nonzeros / elements over the named parameters (default: all conv/linear weights).

    ``names`` are parameter names as in ``model.named_parameters()``; unknown names raise
    KeyError. Biases and BatchNorm parameters count only when named explicitly.
    """
    if names is None:
        tensors = [w for _, w in compressible_weights(model)]
    else:
        params = dict(model.named_parameters())
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(f"model has no parameter(s) {', '.join(missing)}")
        tensors = [params[n] for n in names]
    total = sum(t.numel() for t in tensors)
    if total == 0:
        return 1.0
    nonzero = sum(int(torch.count_nonzero(t.detach())) for t in tensors)
    return nonzero / total


def model_sparsity(model: nn.Module, names: Iterable[str] | None = None) -> float:
    """1 - model_density: the fraction of exact zeros among the same tensors."""
    return 1.0 - model_density(model, names)
