"""Post-training pruning of a trained model: L1 (magnitude), random, and std-threshold.

Each function zeroes entries of the selected tensors in place and returns the model, so the
result can be evaluated as it is or saved with :func:`pqcompress.codec.save` (zeros are stored
in a sparse layout). ``layers`` picks Linear, Conv or both; ``params`` the weights, the
biases or both; ``scope="layer"`` prunes ``amount`` of each tensor, ``scope="global"`` the
``amount`` smallest of all selected tensors together (random: the same fraction overall).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from pqcompress.errors import ConfigError
from pqcompress.ops.prune import std_threshold

Layers = Literal["linear", "conv", "both"]
Params = Literal["weights", "biases", "both"]
Scope = Literal["layer", "global"]

LINEAR_TYPES: tuple[type, ...] = (nn.Linear,)
CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _check(layers: str, params: str, scope: str) -> None:
    if layers not in ("linear", "conv", "both"):
        raise ConfigError(f"layers={layers!r} is not accepted; use linear, conv or both")
    if params not in ("weights", "biases", "both"):
        raise ConfigError(f"params={params!r} is not accepted; use weights, biases or both")
    if scope not in ("layer", "global"):
        raise ConfigError(f"scope={scope!r} is not accepted; use layer or global")


def _check_amount(amount: float) -> float:
    amount = float(amount)
    if not 0.0 <= amount <= 1.0:
        raise ConfigError(f"amount={amount!r} must lie in [0, 1] (the fraction of entries to zero)")
    return amount


def layer_kind(module: nn.Module) -> str | None:
    """'linear', 'conv' or None for a module."""
    if isinstance(module, LINEAR_TYPES):
        return "linear"
    if isinstance(module, CONV_TYPES):
        return "conv"
    return None


def select_tensors(
    model: nn.Module,
    layers: str = "both",
    params: str = "weights",
    *,
    modules: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """{state-dict name: parameter} of the tensors a pruning call touches.

    ``modules`` (module names) restricts the choice further (a random subset of layers).
    """
    _check(layers, params, "layer")
    wanted = None if modules is None else set(modules)
    out: dict[str, torch.Tensor] = {}
    for mname, module in model.named_modules():
        kind = layer_kind(module)
        if kind is None or (layers != "both" and kind != layers):
            continue
        if wanted is not None and mname not in wanted:
            continue
        prefix = f"{mname}." if mname else ""
        if params in ("weights", "both") and getattr(module, "weight", None) is not None:
            out[prefix + "weight"] = module.weight
        if params in ("biases", "both") and getattr(module, "bias", None) is not None:
            out[prefix + "bias"] = module.bias
    return out


def _zero_(t: torch.Tensor, keep: torch.Tensor) -> None:
    """Set the entries outside ``keep`` to +0.0 in place (multiplying would leave -0.0, which
    is not bit-identical to the code 0 a .pqz file decodes to)."""
    t.copy_(torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device)))


def _kth_mask(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Mask of survivors: the round(amount * n) lowest scores are pruned (ties by position)."""
    n = scores.numel()
    k = round(amount * n)
    keep = torch.ones(n, dtype=torch.bool, device=scores.device)
    if k > 0:
        idx = torch.argsort(scores.reshape(-1), stable=True)[:k]
        keep[idx] = False
    return keep.reshape(scores.shape)


@torch.no_grad()
def _apply_scores(
    tensors: dict[str, torch.Tensor], scores: dict[str, torch.Tensor], amount: float, scope: str
) -> dict[str, float]:
    sparsity: dict[str, float] = {}
    if not tensors:
        return sparsity
    if scope == "layer":
        for name, t in tensors.items():
            keep = _kth_mask(scores[name], amount)
            _zero_(t, keep)
            sparsity[name] = float((t == 0).float().mean())
        return sparsity
    names = list(tensors)
    flat = torch.cat([scores[n].reshape(-1).float() for n in names])
    keep = _kth_mask(flat, amount)
    start = 0
    for n in names:
        t = tensors[n]
        part = keep[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
        _zero_(t, part)
        sparsity[n] = float((t == 0).float().mean())
    return sparsity


def prune_l1(
    model: nn.Module,
    amount: float,
    *,
    layers: Layers = "both",
    params: Params = "weights",
    scope: Scope = "layer",
    modules: Iterable[str] | None = None,
) -> nn.Module:
    """Zero the ``amount`` fraction of smallest-magnitude entries (L1 unstructured pruning)."""
    _check(layers, params, scope)
    amount = _check_amount(amount)
    tensors = select_tensors(model, layers, params, modules=modules)
    _apply_scores(tensors, {n: t.detach().abs() for n, t in tensors.items()}, amount, scope)
    return model


def prune_random(
    model: nn.Module,
    amount: float,
    *,
    layers: Layers = "both",
    params: Params = "weights",
    scope: Scope = "layer",
    seed: int = 0,
    modules: Iterable[str] | None = None,
) -> nn.Module:
    """Zero a random ``amount`` fraction of entries (seeded: the same seed, the same mask)."""
    _check(layers, params, scope)
    amount = _check_amount(amount)
    tensors = select_tensors(model, layers, params, modules=modules)
    gen = torch.Generator().manual_seed(int(seed))
    scores = {n: torch.rand(t.shape, generator=gen).to(t.device) for n, t in tensors.items()}
    _apply_scores(tensors, scores, amount, scope)
    return model


@torch.no_grad()
def prune_std(
    model: nn.Module,
    alpha: float,
    *,
    layers: Layers = "both",
    params: Params = "weights",
    scope: Scope = "layer",
    modules: Iterable[str] | None = None,
) -> nn.Module:
    """Zero entries with |w| < alpha * std(W) (docs/method.md §1's pruning, as post-training).

    ``scope="layer"``: each tensor's own std; ``"global"``: the std of all selected entries.
    """
    _check(layers, params, scope)
    if alpha < 0:
        raise ConfigError(f"alpha={alpha!r} must be >= 0")
    tensors = select_tensors(model, layers, params, modules=modules)
    if scope == "global" and tensors:
        allv = torch.cat([t.detach().reshape(-1).float() for t in tensors.values()])
        beta_g = std_threshold(allv, alpha)
    for t in tensors.values():
        beta = beta_g if scope == "global" else std_threshold(t, alpha)
        _zero_(t, t.abs() >= beta)
    return model


def sparsity(model: nn.Module, layers: Layers = "both", params: Params = "both") -> float:
    """Share of zero entries over the selected tensors."""
    ts = select_tensors(model, layers, params)
    n = sum(t.numel() for t in ts.values())
    z = sum(int((t == 0).sum()) for t in ts.values())
    return z / n if n else 0.0
