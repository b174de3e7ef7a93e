"""Checkpoint files: plain tensors and containers, saved atomically, loaded with weights_only=True."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pqcompress.errors import CheckpointError
from pqcompress.train.atomic import atomic_write

FORMAT = "pqcompress-checkpoint"
FORMAT_VERSION = 1


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


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch CPU and CUDA, Python, NumPy) as tensors and plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
