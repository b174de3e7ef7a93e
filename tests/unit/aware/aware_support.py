"""A tiny conv + BatchNorm + dense model and seeded batches for the compressor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def net(hidden: int = 32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def batches(n: int = 6, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g))
        for _ in range(n)
    ]


def fit(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    comp: Any,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    after_step: Callable[[Any], None] | None = None,
) -> None:
    """The loop the compressor is made for: forward, loss, backward, ``opt.step()``,
    ``comp.step()`` (then ``after_step(comp)``) for every batch."""
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
        if after_step is not None:
            after_step(comp)
