"""A user's own model by import path, ``package.module:factory``: the factory returns the
``nn.Module`` (it gets ``num_classes`` and ``input_shape`` when its signature takes them, and
the ``model_args``). The module is imported from the working directory or ``PYTHONPATH``.

Only the caller names a factory (a command line, a recipe, ``pqc.load(path, model=...)``); a
``.pqz`` file records the path as metadata and opening it never imports it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from pqcompress.errors import ConfigError

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_factory_path(name: str) -> bool:
    """Whether ``name`` is ``package.module:factory`` rather than a registry name."""
    return bool(_PATH.match(name))


def import_factory(path: str) -> Callable[..., Any]:
    """The callable ``path`` names; ConfigError (one line) when it cannot be imported."""
    if not is_factory_path(path):
        raise ConfigError(f"model {path!r}: expected package.module:factory")
    module_name, attr = path.split(":")
    cwd = os.getcwd()
    if cwd not in sys.path:  # "from the working directory", as python -m does
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model {path!r}: cannot import {module_name!r} ({exc}); it must be importable from "
            "the working directory or PYTHONPATH"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model {path!r}: {module_name!r} has no callable {attr!r}")
    return factory


def build_from_factory(
    path: str, *, num_classes: int, input_shape: Sequence[int], **model_args: Any
) -> nn.Module:
    """Call the factory: ``num_classes``/``input_shape`` passed when it takes them (or takes
    ``**kwargs``), ``model_args`` always. ConfigError when it refuses them or returns no
    ``nn.Module``."""
    factory = import_factory(path)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = dict(model_args)
    for key, value in (("num_classes", num_classes), ("input_shape", tuple(input_shape))):
        if key in params or open_kwargs:
            kwargs.setdefault(key, value)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {path!r} refused its arguments {sorted(kwargs)}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {path!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
