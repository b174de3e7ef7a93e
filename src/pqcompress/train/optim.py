"""Optimizer construction and the per-epoch learning-rate schedule (a pure function of the epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from pqcompress.aware.compressor import Compressor
from pqcompress.aware.fused_optim import fuse
from pqcompress.config import TrainConfig
from pqcompress.errors import ConfigError


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: TrainConfig, compressor: Any = None
) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov, weight decay), Adam (weight decay as L2) or AdamW (decoupled
    weight decay) from ``cfg``.

    With a ``compressor``, the optimizer is its fused counterpart (``pqcompress.aware.PQSGD``,
    ``PQAdam``, ``PQAdamW``): the same update, fused with the compressor's every-step
    application (the plain update whenever the compressor cannot fuse).
    """
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        if cfg.nesterov and cfg.momentum <= 0:
            raise ConfigError("train.nesterov=true needs train.momentum > 0")
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ConfigError(
            f"train.optimizer={cfg.optimizer!r} is not accepted; expected 'sgd', 'adam' or 'adamw'"
        )
    if isinstance(compressor, Compressor):
        return fuse(opt, compressor)
    return opt


ONECYCLE_START_DIV = 25.0  # onecycle starts at lr / 25 (torch's OneCycleLR div_factor)
ONECYCLE_END_DIV = 1e4  # and ends at (lr / 25) / 1e4 (final_div_factor)


def lr_at_epoch(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch`` (for onecycle: at the epoch's first step).

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
    if cfg.lr_schedule == "onecycle":
        return onecycle_lr(cfg, epoch / cfg.epochs)
    raise ConfigError(f"train.lr_schedule={cfg.lr_schedule!r} is not accepted")


def onecycle_lr(cfg: TrainConfig, progress: float) -> float:
    """One-cycle lr at ``progress`` in [0, 1] of all training steps (Smith & Topin, 2019).

    A half cosine up from ``lr / 25`` to ``lr`` over the first ``warmup_fraction`` of the steps,
    then a half cosine down to ``lr / 25 / 1e4`` at the last step: torch's ``OneCycleLR`` with
    ``anneal_strategy="cos"``, written as a pure function of progress so resume is exact.
    """
    top, start = cfg.lr, cfg.lr / ONECYCLE_START_DIV
    end = start / ONECYCLE_END_DIV
    w = cfg.warmup_fraction
    t = min(max(progress, 0.0), 1.0)
    if t < w:
        return start + (top - start) * (1.0 - math.cos(math.pi * t / w)) / 2.0
    u = (t - w) / (1.0 - w)
    return end + (top - end) * (1.0 + math.cos(math.pi * u)) / 2.0


def is_per_step(cfg: TrainConfig) -> bool:
    """Whether the schedule changes the lr inside an epoch (onecycle) or only between epochs."""
    return cfg.lr_schedule == "onecycle"


class EpochLRSchedule:
    """Sets every param group's lr from ``lr_at_epoch`` at the start of each epoch, and, for
    per-step schedules (onecycle), from ``onecycle_lr`` before every optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.epoch = 0
        self.per_step = is_per_step(cfg)

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def start_epoch(self, epoch: int) -> float:
        """Apply the lr of 0-based ``epoch`` and return it."""
        self.epoch = epoch
        lr = lr_at_epoch(self.cfg, epoch)
        self._set(lr)
        return lr

    def before_step(self, step: int, steps_per_epoch: int) -> None:
        """Apply the lr of 0-based ``step`` of the current epoch (per-step schedules only)."""
        if self.per_step:
            total = self.cfg.epochs * max(steps_per_epoch, 1)
            self._set(onecycle_lr(self.cfg, (self.epoch * steps_per_epoch + step) / total))

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "kind": self.cfg.lr_schedule}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
