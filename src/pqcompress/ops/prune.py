"""Magnitude pruning at a threshold relative to the layer's spread: beta = alpha * std(W)."""

from __future__ import annotations

import math

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


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 value (kept as a Python float)."""
    if not math.isfinite(x):
        return x
    return float(torch.tensor(x, dtype=torch.float32))
