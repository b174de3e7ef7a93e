"""Optimizers whose step also applies the compressor, in one pass per tensor: PQSGD, PQAdam,
PQAdamW, and :func:`fuse`, which turns a user's torch optimizer into its fused counterpart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from pqcompress.aware.compressor import Compressor
from pqcompress.errors import ConfigError
from pqcompress.ops.fused import (
    AdamTerms,
    AdamUpdate,
    FusedUpdate,
    SGDTerms,
    SGDUpdate,
    numba_eligible,
)

Params = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]


class _Fused(torch.optim.Optimizer):
    """The step the fused optimizers share. For every compressed tensor with a dense
    gradient, :meth:`_update` builds the optimizer's update (creating its state as torch
    would) and the gradient is hidden while the torch optimizer steps the other parameters;
    then :meth:`Compressor.step_fused` runs each update fused with its P->Q application."""

    compressor: Compressor

    def _fusable(self, group: dict[str, Any]) -> bool:
        """Whether this param group's settings have a fused kernel."""
        raise NotImplementedError

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
    ) -> FusedUpdate | None:
        """The fused update of ``p`` (its state created or advanced), or None when its
        tensors cannot go to the kernels together (``numba_eligible``: e.g. a momentum buffer
        restored in another memory layout): torch's step takes it, then the compressor."""
        raise NotImplementedError

    def _eligible(self, p: torch.Tensor, grad: torch.Tensor) -> bool:
        """``p``, its gradient and the state tensors it already has, in one layout."""
        state = [v for v in self.state[p].values() if isinstance(v, torch.Tensor) and v.dim()]
        return numba_eligible(p, grad, *state)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        comp = self.compressor
        if not comp.can_fuse():
            super().step()
            return loss
        by_param = {id(t.param): t for t in comp.fused_targets()}
        updates: dict[str, FusedUpdate] = {}
        hidden: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in self.param_groups:
            if not self._fusable(group):
                continue
            for p in group["params"]:
                target = by_param.get(id(p))
                grad = p.grad
                if target is None or grad is None or grad.is_sparse:
                    continue
                update = self._update(p, grad, group)
                if update is None:
                    continue
                updates[target.name] = update
                hidden.append((p, grad))
                p.grad = None  # torch's step skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, grad in hidden:
                p.grad = grad
        comp.step_fused(updates)
        return loss


class PQSGD(_Fused, torch.optim.SGD):
    """``torch.optim.SGD`` that updates the compressed tensors and compresses them in one fused
    pass (``ops.fused.sgd_compress_``), reading each weight, gradient and momentum once for
    the update and the compressor's statistics and once more to compress.

    Use it in place of SGD and keep calling ``compressor.step()`` after ``optimizer.step()``:
    that call then only closes the step. Other parameters (biases, BatchNorm) take torch's own
    SGD step. When the compressor cannot fuse (``Compressor.can_fuse``: a per-epoch or
    post-training schedule, a sticky mask, CUDA tensors, the torch backend) or a group uses
    ``maximize``, the step is plain SGD and ``compressor.step()`` compresses as usual. The
    state dict is SGD's (``momentum_buffer`` per parameter), so checkpoints move freely between
    SGD and PQSGD. The update is torch's formula in float32, element by element; it can differ
    from torch's vectorised kernels in the last bit (fused multiply-add), not in the method.
    """

    def __init__(self, params: Params, compressor: Compressor, **sgd: Any) -> None:
        """``sgd``: ``torch.optim.SGD``'s keyword arguments (lr, momentum, dampening,
        weight_decay, nesterov, ...)."""
        super().__init__(params, **sgd)
        self.compressor = compressor

    def _fusable(self, group: dict[str, Any]) -> bool:
        return not (group.get("maximize") or group.get("differentiable"))

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
    ) -> SGDUpdate | None:
        if not self._eligible(p, grad):
            return None
        terms = SGDTerms(
            lr=float(group["lr"]),
            momentum=float(group["momentum"]),
            dampening=float(group["dampening"]),
            weight_decay=float(group["weight_decay"]),
            nesterov=bool(group["nesterov"]),
        )
        state = self.state[p]
        buf = state.get("momentum_buffer")
        first = buf is None
        if terms.momentum != 0 and buf is None:
            buf = torch.empty_like(p)  # p's layout: the kernel pairs them in memory order
            state["momentum_buffer"] = buf
        return SGDUpdate(grad, buf if terms.momentum != 0 else None, first, terms)


class PQAdam(_Fused, torch.optim.Adam):
    """``torch.optim.Adam`` fused with the compressor, as :class:`PQSGD` fuses SGD: for each
    compressed tensor, Adam's update (weight decay as L2, or decoupled for AdamW; bias
    corrections; float32 element by element) and the compressor's statistics share one pass,
    then one more pass compresses. The state dict is Adam's (``step``, ``exp_avg``,
    ``exp_avg_sq``), so checkpoints move freely between Adam and PQAdam. Groups with
    ``amsgrad``, ``maximize``, ``capturable``, ``differentiable`` or ``fused`` take torch's own
    step, and ``compressor.step()`` compresses their tensors as usual."""

    def __init__(self, params: Params, compressor: Compressor, **adam: Any) -> None:
        """``adam``: ``torch.optim.Adam``'s keyword arguments (lr, betas, eps, weight_decay,
        amsgrad, decoupled_weight_decay, ...)."""
        super().__init__(params, **adam)
        self.compressor = compressor

    def _fusable(self, group: dict[str, Any]) -> bool:
        off = ("amsgrad", "maximize", "capturable", "differentiable", "fused")
        return not any(group.get(k) for k in off)

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
    ) -> AdamUpdate | None:
        if not self._eligible(p, grad):
            return None
        state = self.state[p]
        if not state:  # as torch.optim.Adam creates it
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        terms = AdamTerms(
            lr=float(group["lr"]),
            step=int(state["step"].item()),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            decoupled=bool(group.get("decoupled_weight_decay", False)),
        )
        return AdamUpdate(grad, state["exp_avg"], state["exp_avg_sq"], terms)


class PQAdamW(PQAdam):
    """``torch.optim.AdamW`` fused with the compressor: :class:`PQAdam` with decoupled weight
    decay, and AdamW's default ``weight_decay=0.01``."""

    def __init__(self, params: Params, compressor: Compressor, **adamw: Any) -> None:
        adamw.setdefault("weight_decay", 0.01)
        super().__init__(params, compressor, decoupled_weight_decay=True, **adamw)


# the torch optimizers with a fused counterpart (exact classes: a subclass may change the step)
FUSED: dict[type[torch.optim.Optimizer], type[_Fused]] = {
    torch.optim.SGD: PQSGD,
    torch.optim.Adam: PQAdam,
    torch.optim.AdamW: PQAdamW,
}


def fuse(optimizer: torch.optim.Optimizer, compressor: Compressor) -> torch.optim.Optimizer:
    """The fused counterpart of a user's ``torch.optim.SGD``, ``Adam`` or ``AdamW``: the same
    param groups, hyperparameters and state, with every compressed tensor's update fused
    with the compressor's application (what brings the pass from a separate read of every
    weight to a share of the optimizer's own pass). The loop stays ``opt.step();
    comp.step()``. Build a learning-rate scheduler on the returned optimizer, not the old one.
    An optimizer already fused is returned as it is; any other optimizer is a
    ``ConfigError`` naming the ones accepted (keep it and call ``comp.step()`` after it: the
    result is the same, the pass is separate)."""
    if isinstance(optimizer, _Fused):
        if optimizer.compressor is not compressor:
            raise ConfigError("this optimizer is already fused with another compressor")
        return optimizer
    cls = FUSED.get(type(optimizer))
    if cls is None:
        accepted = ", ".join(f"torch.optim.{k.__name__}" for k in FUSED)
        raise ConfigError(
            f"no fused counterpart for {type(optimizer).__module__}.{type(optimizer).__name__}; "
            f"fuse() accepts {accepted}. Other optimizers work unfused: call comp.step() after "
            "opt.step()"
        )
    fused = cls([dict(g) for g in optimizer.param_groups], compressor)  # the groups' settings
    fused.defaults = dict(optimizer.defaults)
    fused.load_state_dict(optimizer.state_dict())
    return fused
