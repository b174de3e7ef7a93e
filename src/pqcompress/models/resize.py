"""Resize a model's layers to the shapes a shrunk file stores (no graph tracing, no code from
the file): each conv, linear, normalization and PReLU layer whose tensors the file stores with
fewer channels is given empty tensors of those shapes and matching attributes, ready for
``load_state_dict``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pqcompress.errors import ConfigError

_CONV = nn.modules.conv._ConvNd
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _own(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        **dict(module.named_parameters(recurse=False)),
        **{k: v for k, v in module.named_buffers(recurse=False) if v is not None},
    }


def resize_to(model: nn.Module, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Give every layer of ``model`` whose tensors ``shapes`` (state_dict name -> shape) lists
    with other sizes tensors of those sizes; returns the names of the layers resized.
    ConfigError for a layer type whose channels cannot be resized, naming it."""
    resized = []
    for name, module in model.named_modules():
        own = _own(module)
        prefix = f"{name}." if name else ""
        new = {
            attr: tuple(int(d) for d in shapes[prefix + attr])
            for attr in own
            if prefix + attr in shapes and tuple(own[attr].shape) != tuple(shapes[prefix + attr])
        }
        if not new:
            continue
        _set_attributes(name, module, {a: _shape(a, own, new) for a in own})
        for attr, shape in new.items():
            old = own[attr]
            fresh = torch.empty(shape, dtype=old.dtype, device=old.device)
            if isinstance(old, nn.Parameter):
                setattr(module, attr, nn.Parameter(fresh, requires_grad=old.requires_grad))
            else:
                module._buffers[attr] = fresh
        resized.append(name)
    return resized


def _shape(attr: str, own: Mapping[str, torch.Tensor], new: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(new.get(attr, tuple(own[attr].shape)))


def _set_attributes(name: str, m: nn.Module, shapes: Mapping[str, tuple[int, ...]]) -> None:
    if isinstance(m, _CONV):
        w = shapes["weight"]
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        if m.groups > 1 and not depthwise:
            raise ConfigError(f"layer '{name}' is a grouped convolution; it cannot be resized")
        if m.transposed:
            m.in_channels, m.out_channels = w[0], w[1] * m.groups
        else:
            m.out_channels, m.in_channels = w[0], w[1] * m.groups
        if depthwise:
            m.groups = m.in_channels = m.out_channels
    elif isinstance(m, nn.Linear):
        m.out_features, m.in_features = shapes["weight"]
    elif isinstance(m, _NORMS):
        sized = [shapes[a] for a in ("weight", "running_mean") if a in shapes]
        m.num_features = sized[0][0]
    elif isinstance(m, nn.PReLU):
        m.num_parameters = shapes["weight"][0]
    else:
        raise ConfigError(
            f"layer '{name}' ({type(m).__name__}) is stored with other sizes than the model "
            "has, and pqcompress resizes only conv, linear, BatchNorm/InstanceNorm and PReLU "
            "layers"
        )
