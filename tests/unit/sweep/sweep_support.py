"""Helpers for the sweep tests: a tiny, fast sweep (narrow CNN5 on a few hundred digits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MINIMAL_YAML = """\
model: cnn5
dataset: digits
train: {epochs: 2, batch_size: 64, optimizer: sgd, lr: 0.05}
grid:
  alpha: [0.0, 0.5]
  bits: [32, 4]
"""


def tiny_spec(**changes: Any) -> dict[str, Any]:
    """A sweep dict whose points train in about a second each."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "model": "cnn5",
        "model_args": {"width": 0.25},
        "dataset": "digits",
        "data": {"subset": 300},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "max_steps_per_epoch": 3},
        "grid": {"alpha": [0.0, 0.5], "bits": [32, 4]},
    }
    spec.update(changes)
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path
