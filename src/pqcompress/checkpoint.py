"""Checkpoint files: plain tensors and containers, saved atomically, loaded with weights_only=True.

Ground floor (beside ``atomic``), so that the codec can read a run without the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pqcompress.atomic import atomic_write
from pqcompress.errors import CheckpointError

FORMAT = "pqcompress-checkpoint"
FORMAT_VERSION = 1
RUN_CONFIG = "config.yaml"  # the experiment config beside a run's checkpoints


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` plus the format tag and version to ``path``."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    atomic_write(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU; CheckpointError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, foreign pickle, truncated zip ...
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a pqcompress checkpoint")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {version}; this pqcompress reads "
            f"version {FORMAT_VERSION}"
        )
    return data


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict stored in a checkpoint.pt or best.pt (``model.load_state_dict(...)``)."""
    return load_checkpoint(path)["model"]


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The experiment config a run directory records in ``config.yaml`` (None when absent)."""
    from pqcompress.errors import ConfigError
    from pqcompress.yamlio import read_yaml_file

    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        data = read_yaml_file(path, "run config")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    return data if isinstance(data, dict) else None
