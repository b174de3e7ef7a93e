"""Input-shape checks and flatten-size inference shared by the model builders."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pqcompress.errors import ConfigError

IMAGE_LAYOUT = "(channels, height, width)"
SEQUENCE_LAYOUT = "(channels, length)"


def check_input_shape(
    model: str, input_shape: tuple[int, ...], *, rank: int, min_size: int
) -> tuple[int, ...]:
    """Raise ConfigError unless ``input_shape`` has ``rank`` dims and every spatial dim >= min_size."""
    layout = IMAGE_LAYOUT if rank == 3 else SEQUENCE_LAYOUT
    if len(input_shape) != rank:
        raise ConfigError(
            f"{model} expects input_shape {layout}, got {tuple(input_shape)} ({len(input_shape)} dims)"
        )
    if any(d < min_size for d in input_shape[1:]):
        raise ConfigError(
            f"{model} needs every spatial size >= {min_size} (it pools that far), "
            f"got input_shape {tuple(input_shape)}"
        )
    return tuple(input_shape)


def flatten_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Number of features per sample after ``features``.

    Computed from the layers' shape arithmetic (``output_shape``) when every layer is a known
    kind; otherwise by one dummy forward in eval mode (which keeps BatchNorm statistics
    untouched and consumes no random numbers). The arithmetic matters beyond speed: a model
    built on the meta device (as ``pqcompress.load`` does) would otherwise run meta kernels
    that import torch's compiler stack (dynamo, sympy: about half a second).
    """
    shape = output_shape(features, tuple(input_shape))
    if shape is not None:
        return math.prod(shape)
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    finally:
        features.train(was_training)
    return int(out[0].numel())


_SHAPE_KEEPING = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)


def _pair(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:  # torch drops a window that starts in padding
        out -= 1
    return out


def output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Per-sample output shape of ``module`` for a per-sample input ``shape`` (no batch dim),
    from shape arithmetic alone; None when a layer is of a kind this does not know."""
    if isinstance(module, nn.Sequential):
        for child in module:
            out = output_shape(child, shape)
            if out is None:
                return None
            shape = out
        return shape
    if isinstance(module, _SHAPE_KEEPING):
        return shape
    if isinstance(module, nn.Flatten):
        return (math.prod(shape),) if module.start_dim == 1 and module.end_dim == -1 else None
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        n = 1 if isinstance(module, nn.Conv1d) else 2
        if isinstance(module.padding, str) or len(shape) != n + 1:
            return None
        k, s, p, d = (
            _pair(v, n)
            for v in (module.kernel_size, module.stride, module.padding, module.dilation)
        )
        spatial = tuple(_window(shape[1 + i], k[i], s[i], p[i], d[i], False) for i in range(n))
        return (module.out_channels, *spatial)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
        n = 1 if isinstance(module, (nn.MaxPool1d, nn.AvgPool1d)) else 2
        if len(shape) != n + 1:
            return None
        k = _pair(module.kernel_size, n)
        s = _pair(module.stride if module.stride is not None else module.kernel_size, n)
        p = _pair(module.padding, n)
        d = _pair(getattr(module, "dilation", 1), n)
        ceil = bool(module.ceil_mode)
        spatial = tuple(_window(shape[1 + i], k[i], s[i], p[i], d[i], ceil) for i in range(n))
        return (shape[0], *spatial)
    return None
