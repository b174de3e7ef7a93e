"""PQSGD: torch.optim.SGD whose step also applies the compressor, in one pass per tensor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from pqcompress.aware.compressor import Compressor
from pqcompress.ops.fused import SGDTerms, numba_eligible


class PQSGD(torch.optim.SGD):
    """``torch.optim.SGD`` that updates the compressed tensors and compresses them in one fused
    pass (``ops.fused.sgd_compress_``), reading each weight, gradient and momentum once for
    the update and the compressor's statistics and once more to compress.

    Use it in place of SGD and keep calling ``compressor.step()`` after ``optimizer.step()``:
    that call then only closes the step. Other parameters (biases, BatchNorm) take torch's own
    SGD step. When the compressor cannot fuse (``Compressor.can_fuse_sgd``: a per-epoch or
    post-training schedule, a sticky mask, CUDA tensors, the torch backend) or a group uses
    ``maximize``, the step is plain SGD and ``compressor.step()`` compresses as usual. The
    state dict is SGD's (``momentum_buffer`` per parameter), so checkpoints move freely between
    SGD and PQSGD. The update is torch's formula in float32, element by element; it can differ
    from torch's vectorised kernels in the last bit (fused multiply-add), not in the method.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
        compressor: Compressor,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        self.compressor = compressor

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        comp = self.compressor
        if not comp.can_fuse_sgd():
            super().step()
            return loss
        by_param = {id(t.param): t for t in comp.fused_targets()}
        updates: dict[str, tuple[torch.Tensor, torch.Tensor | None, bool, SGDTerms]] = {}
        hidden: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in self.param_groups:
            if group.get("maximize") or group.get("differentiable"):
                continue
            terms = SGDTerms(
                lr=float(group["lr"]),
                momentum=float(group["momentum"]),
                dampening=float(group["dampening"]),
                weight_decay=float(group["weight_decay"]),
                nesterov=bool(group["nesterov"]),
            )
            for p in group["params"]:
                target = by_param.get(id(p))
                grad = p.grad
                if target is None or grad is None or grad.is_sparse or not numba_eligible(grad):
                    continue
                state = self.state[p]
                buf = state.get("momentum_buffer")
                first = buf is None
                if terms.momentum != 0 and buf is None:
                    buf = torch.empty_like(p, memory_format=torch.contiguous_format)
                    state["momentum_buffer"] = buf
                updates[target.name] = (grad, buf if terms.momentum != 0 else None, first, terms)
                hidden.append((p, grad))
                p.grad = None  # torch's step skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, grad in hidden:
                p.grad = grad
        comp.step_fused(updates)
        return loss
