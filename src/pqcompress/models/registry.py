"""The model registry: register builders by name and build models from a name plus options."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from pqcompress.errors import ConfigError
from pqcompress.registry import Registry

ModelBuilder = Callable[..., nn.Module]

DEFAULT_INPUT_SHAPE: tuple[int, ...] = (3, 32, 32)
_RESERVED = ("num_classes", "input_shape")

_MODELS: Registry[ModelBuilder] = Registry("model")
_DEFAULT_INPUTS: dict[str, tuple[int, ...]] = {}


def register_model(
    name: str, *, default_input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``fn(*, num_classes, input_shape, **options) -> nn.Module`` under ``name``.

    ``default_input_shape`` is the input the model was designed for (what the study fed it);
    it is metadata for listings and tests, ``build_model`` still defaults to (3, 32, 32).
    """

    def decorator(fn: ModelBuilder) -> ModelBuilder:
        params = inspect.signature(fn).parameters
        missing = [p for p in _RESERVED if p not in params]
        if missing:
            raise TypeError(f"model builder '{name}' must accept {', '.join(missing)}")
        _MODELS.register(name)(fn)
        _DEFAULT_INPUTS[name] = tuple(int(d) for d in default_input_shape)
        return fn

    return decorator


def available_models() -> list[str]:
    """Sorted names of every registered model."""
    return _MODELS.names()


def default_input_shape(name: str) -> tuple[int, ...]:
    """The input shape a registered model was designed for, e.g. (2, 1024) for amc1d."""
    _MODELS.get(name)
    return _DEFAULT_INPUTS[name]


def model_options(name: str) -> dict[str, Any]:
    """The keyword options a registered model accepts, with their defaults."""
    params = inspect.signature(_MODELS.get(name)).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.name not in _RESERVED and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def build_model(
    name: str,
    *,
    num_classes: int = 10,
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name`` returning logits of shape (batch, num_classes).

    ``name`` may also be ``package.module:factory`` (a user's own model, see
    :mod:`pqcompress.models.factory`). Unknown names raise RegistryError listing the accepted
    ones; unknown options, a bad
    ``num_classes`` or an ``input_shape`` the model cannot take raise ConfigError. The model
    carries ``pqc_registry`` (name, options, classes, input shape): :func:`pqcompress.save`
    records it unless told otherwise, so :func:`pqcompress.load` rebuilds the model.
    """
    from pqcompress.models.factory import build_from_factory, is_factory_path

    if is_factory_path(name):  # a user's own model, package.module:factory
        shape = _as_shape(input_shape)
        model = build_from_factory(name, num_classes=num_classes, input_shape=shape, **kwargs)
        model.pqc_registry = {
            "name": name,
            "model_args": dict(kwargs),
            "num_classes": num_classes,
            "input_shape": list(shape),
        }
        return model
    builder = _MODELS.get(name)
    accepted = model_options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        listing = ", ".join(accepted) if accepted else "none"
        raise ConfigError(
            f"model '{name}' got unknown option(s) {', '.join(repr(u) for u in unknown)}; "
            f"accepted: {listing}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    shape = _as_shape(input_shape)
    model = builder(num_classes=num_classes, input_shape=shape, **kwargs)
    # what pqcompress.save records by default, so that pqcompress.load can rebuild the model
    model.pqc_registry = {  # a plain attribute: not in the state dict, not a submodule
        "name": name,
        "model_args": dict(kwargs),
        "num_classes": num_classes,
        "input_shape": list(shape),
    }
    return model


def _as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ConfigError(f"input_shape must be a sequence of sizes, got {input_shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ConfigError(f"input_shape must be positive integer sizes, got {input_shape!r}")
    return shape
