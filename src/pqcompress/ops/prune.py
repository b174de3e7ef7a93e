"""Magnitude pruning at a threshold relative to the layer's spread: beta = alpha * std(W)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def layer_std(w: torch.Tensor) -> float:
    """Population standard deviation (ddof = 0, like numpy/Keras) computed in float64."""
    if w.numel() == 0:
        return 0.0
    return float(torch.std(w.detach().double(), correction=0)) if w.numel() > 1 else 0.0


def std_threshold(w: torch.Tensor, alpha: float) -> float:
    """beta = alpha * std(W) as the float32 value that pruning compares against."""
    return _f32(alpha * layer_std(w))


def prune_mask(w: torch.Tensor, beta: float) -> torch.Tensor:
    """Boolean mask of survivors: |w| >= beta (elements with |w| < beta are pruned)."""
    return w.abs() >= torch.tensor(beta, dtype=w.dtype, device=w.device)


def prune_by_std(w: torch.Tensor, alpha: float) -> tuple[torch.Tensor, float]:
    """P(W, beta) with beta = alpha * std(W): returns (pruned copy, beta)."""
    beta = std_threshold(w, alpha)
    return torch.where(
        prune_mask(w, beta), w, torch.zeros((), dtype=w.dtype, device=w.device)
    ), beta


def cubic_ramp(step: int, ramp_steps: int) -> float:
    """Share of the final pruning reached after ``step`` steps of a ``ramp_steps`` ramp:
    ``1 - (1 - t / T)^3`` (Zhu & Gupta, 2017, "To prune, or not to prune"), 1 once t >= T
    and always 1 when ``ramp_steps`` is 0."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return 1.0
    t = max(step, 0) / ramp_steps
    return 1.0 - (1.0 - t) ** 3


SOLVE_SAMPLE = 1 << 18  # at most this many elements are sampled to solve a shared alpha
SOLVE_SEED = 0x5EED  # the sample's positions: the same in every solve, run and resume


def solved_keep(density: float, solved_numel: int, fixed_nonzero: int, fixed_numel: int) -> float:
    """The share of the solved tensors' ``solved_numel`` elements that must survive for
    ``density`` of all elements to survive, when ``fixed_nonzero`` of ``fixed_numel`` further
    elements (tensors with an alpha of their own) survive anyway. At or below 0 the target is
    infeasible: the solved tensors would be pruned entirely. Above 1 they stay dense and the
    target is missed from above."""
    if solved_numel <= 0:
        return 1.0
    return (density * (solved_numel + fixed_numel) - fixed_nonzero) / solved_numel


def alpha_for_density(
    tensors: Sequence[torch.Tensor],
    density: float,
    *,
    fixed_nonzero: int = 0,
    fixed_numel: int = 0,
    relative: bool = True,
) -> float:
    """The one alpha that keeps ``density`` of all elements when every tensor is pruned at
    ``alpha * std`` of its own values (so each is still pruned relative to its own spread).

    ``fixed_nonzero`` of ``fixed_numel`` further elements (tensors with an alpha of their own)
    count towards the total. The alpha is the ``k``-th largest ``|w| / std(W)`` over the
    tensors, ``k`` the survivors needed. Tensors totalling more than ``SOLVE_SAMPLE`` elements
    are sampled: each tensor gives its share of ``SOLVE_SAMPLE`` positions drawn uniformly at
    random (with replacement, from a generator with a fixed seed, so a solve is repeatable).
    The draw must be random: a common stride aliases with a tensor's layout (a stride of 8
    over a Linear layer fed by flattened 4x4 feature maps sees one spatial position in eight)
    and missed the target by 3.8 points on a trained CNN. At 2^18 samples the achieved
    density is within about 0.2 point of the target. Returns 0.0 when nothing needs pruning,
    and a value above every ratio when nothing may survive.

    ``relative=False`` ranks the magnitudes themselves (global magnitude pruning): the result
    is then one threshold on ``|w|`` shared by every tensor, not an alpha.
    """
    total = sum(t.numel() for t in tensors)
    if total == 0:
        return 0.0
    keep = min(max(solved_keep(density, total, fixed_nonzero, fixed_numel), 0.0), 1.0)
    if keep >= 1.0:
        return 0.0
    gen = torch.Generator().manual_seed(SOLVE_SEED) if total > SOLVE_SAMPLE else None
    ratios = []
    for t in tensors:
        flat = t.detach().reshape(-1).float()
        std = layer_std(flat)
        if gen is not None:  # this tensor's share of the sample, at random positions
            n = max(1, round(SOLVE_SAMPLE * flat.numel() / total))
            picks = torch.randint(flat.numel(), (n,), generator=gen).to(flat.device)
            sample = flat[picks].abs()
        else:
            sample = flat.abs()
        if not relative:
            ratios.append(sample)
        else:
            ratios.append(sample / std if std > 0 else torch.zeros_like(sample))
    z = torch.cat(ratios)
    k = round(keep * z.numel())
    if k <= 0:
        return float(z.max()) * 2.0 + 1.0
    # the k-th largest ratio: count(z >= alpha) = k (up to ties)
    return float(torch.kthvalue(z, z.numel() - k + 1).values)


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 value (kept as a Python float)."""
    if not math.isfinite(x):
        return x
    return float(torch.tensor(x, dtype=torch.float32))
