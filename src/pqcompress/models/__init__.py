"""Model zoo: a name -> builder registry; importing this package registers every built-in model."""

from __future__ import annotations

from pqcompress.models import amc, cnn5, resnet, student, vgg  # noqa: F401  (registers models)
from pqcompress.models.profile import count_macs, count_parameters, layer_macs
from pqcompress.models.registry import (
    available_models,
    build_model,
    default_input_shape,
    model_options,
    register_model,
)

__all__ = [
    "available_models",
    "build_model",
    "count_macs",
    "count_parameters",
    "default_input_shape",
    "layer_macs",
    "model_options",
    "register_model",
]
