"""Device and CPU-thread selection for training."""

from __future__ import annotations

import torch

from pqcompress.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """ "auto" = CUDA when available, else CPU; otherwise any torch device string ("cpu", "cuda:1")."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"train.device={name!r} is not a device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def apply_threads(threads: int | None) -> None:
    """torch.set_num_threads(threads) when given (process-wide)."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"train.threads={threads} must be >= 1 or null")
        torch.set_num_threads(threads)
