"""Model size and cost: parameter counts and multiply-accumulates (MACs) per sample."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of each Conv1d/2d/3d and Linear layer for ONE sample of ``input_shape``, by name.

    A convolution costs (output elements) x (in_channels / groups) x (kernel elements);
    a linear layer costs (output elements) x in_features. Biases, norms and activations
    are not counted. Measured with forward hooks on one zero sample in eval mode; the
    model's training flag is restored afterwards.
    """
    macs: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            per_sample = output[0].numel()
            if isinstance(module, nn.Linear):
                cost = per_sample * module.in_features
            else:
                kernel = math.prod(module.kernel_size)
                cost = per_sample * (module.in_channels // module.groups) * kernel
            macs[name] = macs.get(name, 0) + cost

        return record

    for name, module in model.named_modules():
        if isinstance(module, (*_CONVS, nn.Linear)):
            handles.append(module.register_forward_hook(hook(name)))

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Total multiply-accumulates of the conv and linear layers for ONE sample."""
    return sum(layer_macs(model, input_shape).values())
