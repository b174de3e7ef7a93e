"""Tiny trained runs for tests that need trained weights (search, serving): seconds on 1 core."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train_tiny_run(out: str | Path, *, epochs: int = 2, seed: int = 0) -> Path:
    """Train student_cnn on digits (val split 0.2) into run directory ``out``; returns it."""
    from pqcompress.config import DataConfig, ExperimentConfig, TrainConfig
    from pqcompress.train.trainer import train

    cfg = ExperimentConfig(
        model="student_cnn",
        dataset="digits",
        data=DataConfig(val_fraction=0.2),
        train=TrainConfig(epochs=epochs, batch_size=32, optimizer="adam", lr=0.01, seed=seed),
    )
    train(cfg, out, progress=False)
    return Path(out)


def tiny_search_spec(run: str | Path, **changes: Any) -> dict[str, Any]:
    """A search spec (plain data) over ``run`` small enough for a test: budget 10, tiny C-TAEA."""
    base: dict[str, Any] = {
        "name": "tiny",
        "model": str(run),
        "dataset": "digits",
        "subset": 120,
        "objectives": ["accuracy", "nonzero"],
        "constraints": {"accuracy_drop_max": 0.3},
        "budget": 10,
        "initial": 6,
        "infill": 2,
        "repeats": 1,
        "surrogate": {"optimizer": {"pop_size": 6, "generations": 5}},
    }
    base.update(changes)
    return base
