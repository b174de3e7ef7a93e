"""One training epoch: forward, loss (cross-entropy or a criterion), backward, optimizer step,
compressor step."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn


class StepCompressor(Protocol):
    def step(self) -> None: ...


# on_step(step, total_steps, running_loss, running_acc) — called every few steps for progress.
StepCallback = Callable[[int, int, float, float], None]

# criterion(logits, x, y, extra) -> scalar loss. ``extra`` is the batch's third element when the
# dataset yields (x, y, extra) (e.g. cached teacher logits, see ArrayDataset.with_target_extra),
# else None. Used in place of cross-entropy; pqcompress.distill.DistillationCriterion is one.
Criterion = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor
]


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU
    whose oneDNN has bfloat16 kernels (AVX512-BF16 or AMX). On other CPUs autocast emulates
    bfloat16, many times slower than float32 (docs/training.md)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_amp(mode: str, device: torch.device) -> str:
    """``train.amp`` as it runs on ``device``: ``auto`` is ``bf16`` where the device computes
    bfloat16 natively and ``off`` elsewhere; the other settings are kept as asked."""
    if mode != "auto":
        return mode
    return "bf16" if native_bf16(device) else "off"


class MixedPrecision:
    """``train.amp``: the forward pass and the loss under autocast (``bf16`` or ``fp16``);
    the weights, their gradients, the optimizer's state and P->Q stay float32 (autocast casts
    the operations' inputs, never the parameters). ``fp16`` adds a gradient scaler: the loss
    is scaled before backward, the gradients unscaled before the step, and a step whose
    gradients overflow is skipped (the compressor then re-applies P->Q to unchanged weights,
    which changes nothing)."""

    def __init__(self, mode: str, device: torch.device) -> None:
        self.mode = mode
        self.dtype = AMP_DTYPES[mode]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def autocast(self) -> Any:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


@dataclass
class EpochStats:
    """What one pass over the train loader measured (running loss/accuracy are sample means)."""

    loss: float
    accuracy: float
    steps: int
    samples: int
    train_time_s: float
    compress_time_s: float


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    label_smoothing: float = 0.0,
    criterion: Criterion | None = None,
    extra: torch.Tensor | None = None,
    amp: MixedPrecision | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, zero_grad, backward, optimizer.step; returns (loss, n correct).

    The loss is cross-entropy (with ``label_smoothing``) unless ``criterion`` is given;
    ``amp`` runs the forward and the loss under autocast (see :class:`MixedPrecision`)."""
    with amp.autocast() if amp is not None else contextlib.nullcontext():
        logits = model(x)
        if criterion is not None:
            loss = criterion(logits, x, y, extra)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    if amp is not None:
        amp.backward_and_step(loss, optimizer)
    else:
        loss.backward()
        optimizer.step()
    correct = (logits.detach().argmax(dim=1) == y).sum()
    return loss.detach(), correct


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, ...]],
    optimizer: torch.optim.Optimizer,
    compressor: StepCompressor | None,
    device: torch.device,
    *,
    total_steps: int,
    on_step: StepCallback | None = None,
    report_every: int = 10,
    before_step: Callable[[int], None] | None = None,
    label_smoothing: float = 0.0,
    criterion: Criterion | None = None,
    amp: MixedPrecision | None = None,
) -> EpochStats:
    """Run at most ``total_steps`` steps; ``compressor.step()`` follows every optimizer step.

    Time inside ``compressor.step()`` is summed into ``compress_time_s`` (on CUDA the device
    is synchronized around the call so the time is the compressor's own). Running loss and
    accuracy accumulate on the device and are read back only every ``report_every`` steps.
    ``before_step(step)`` (0-based) runs before each step, e.g. to set a per-step lr.
    Batches are ``(x, y)`` or ``(x, y, extra)``; ``criterion`` (see :data:`Criterion`)
    replaces cross-entropy and receives ``extra``.
    """
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = steps = 0
    compress_time = 0.0
    for batch in loader:
        x = batch[0].to(device, non_blocking=True)
        y = batch[1].to(device, non_blocking=True)
        if before_step is not None:
            before_step(steps)
        if criterion is not None:
            extra = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
            loss, n_correct = train_step(model, x, y, optimizer, 0.0, criterion, extra, amp)
        elif amp is not None:
            loss, n_correct = train_step(model, x, y, optimizer, label_smoothing, amp=amp)
        elif label_smoothing:
            loss, n_correct = train_step(model, x, y, optimizer, label_smoothing)
        else:
            loss, n_correct = train_step(model, x, y, optimizer)
        if compressor is not None:
            _sync(device)
            t0 = time.perf_counter()
            compressor.step()
            _sync(device)
            compress_time += time.perf_counter() - t0
        n = y.numel()
        loss_sum += loss.double() * n
        correct += n_correct
        samples += n
        steps += 1
        if on_step is not None and (steps % report_every == 0 or steps == total_steps):
            on_step(steps, total_steps, float(loss_sum) / samples, int(correct) / samples)
        if steps >= total_steps:
            break
    _sync(device)
    return EpochStats(
        loss=float(loss_sum) / samples if samples else float("nan"),
        accuracy=int(correct) / samples if samples else 0.0,
        steps=steps,
        samples=samples,
        train_time_s=time.perf_counter() - start,
        compress_time_s=compress_time,
    )


def steps_in_epoch(loader: Any, max_steps: int | None) -> int:
    """len(loader), capped by ``max_steps`` when set."""
    n = len(loader)
    return n if max_steps is None else min(n, max_steps)


def make_epoch_loader(
    dataset: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    shard: tuple[int, int] | None = None,
    even: bool = True,
) -> Iterable[tuple[torch.Tensor, ...]]:
    """A fresh loader for one epoch; order and augmentation are a function of (seed, epoch);
    ``shard=(rank, world)`` gives this rank's part of it (see ``data.loader.make_loader``)."""
    from pqcompress.data.loader import make_loader

    return make_loader(
        dataset, batch_size, shuffle=shuffle, seed=seed, epoch=epoch, shard=shard, even=even
    )
