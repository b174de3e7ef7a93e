"""Optimizer construction and the per-epoch learning-rate schedule (a pure function of the epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from pqcompress.config import TrainConfig
from pqcompress.errors import ConfigError


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov, weight decay) or Adam (weight decay as L2) from ``cfg``."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        if cfg.nesterov and cfg.momentum <= 0:
            raise ConfigError("train.nesterov=true needs train.momentum > 0")
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(
        f"train.optimizer={cfg.optimizer!r} is not accepted; expected 'sgd' or 'adam'"
    )


def lr_at_epoch(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``.

    none: ``lr``; step: ``lr * lr_gamma ** (epoch // lr_step_size)``; cosine: half a cosine
    from ``lr`` at epoch 0 towards 0 at ``epochs`` (``lr * (1 + cos(pi * epoch / epochs)) / 2``).
    Extending ``epochs`` on resume re-stretches the cosine over the new total.
    """
    if cfg.lr_schedule == "none":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step_size)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (1.0 + math.cos(math.pi * epoch / cfg.epochs)) / 2.0
    raise ConfigError(f"train.lr_schedule={cfg.lr_schedule!r} is not accepted")


class EpochLRSchedule:
    """Sets every param group's lr from ``lr_at_epoch`` at the start of each epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.epoch = 0

    def start_epoch(self, epoch: int) -> float:
        """Apply the lr of 0-based ``epoch`` and return it."""
        self.epoch = epoch
        lr = lr_at_epoch(self.cfg, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "kind": self.cfg.lr_schedule}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
