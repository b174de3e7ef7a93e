"""Input-shape checks and flatten-size inference shared by the model builders."""

from __future__ import annotations

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
    """Number of features per sample after ``features``, by one dummy forward in eval mode.

    Eval mode keeps BatchNorm running statistics untouched; zeros consume no random numbers,
    so building a model stays deterministic under ``torch.manual_seed``.
    """
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    finally:
        features.train(was_training)
    return int(out[0].numel())
