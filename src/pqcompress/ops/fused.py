"""One P->Q application on a live tensor, in place: numba kernels on CPU, torch ops elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pqcompress.ops.pq import KIND_ID, NonFiniteError, grid_terms
from pqcompress.ops.rounding import rounding_terms

BACKENDS = ("auto", "numba", "torch")


@dataclass(frozen=True)
class PQSpec:
    """What one application does to one tensor (see ``pq.resolve_kind``)."""

    kind: str
    alpha: float
    bits: int
    rounding: str = "nearest"


@dataclass(frozen=True)
class Applied:
    """The parameters an application used: with the codes they reproduce the tensor exactly."""

    threshold: float
    scale: float
    std: float
    maxabs: float


@dataclass(frozen=True)
class SGDTerms:
    """The hyperparameters of one ``torch.optim.SGD`` step of one tensor."""

    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass(frozen=True)
class AdamTerms:
    """The hyperparameters of one ``torch.optim.Adam`` / ``AdamW`` step of one tensor;
    ``step`` is the tensor's step count after this step (1 on the first)."""

    lr: float
    step: int
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False  # AdamW: the decay shrinks the weights instead of joining the gradient


@dataclass(frozen=True)
class SGDUpdate:
    """One tensor's SGD step, to fuse with its compression (``momentum_buffer`` is None
    without momentum; ``first`` marks the step that creates it)."""

    grad: torch.Tensor
    momentum_buffer: torch.Tensor | None
    first: bool
    terms: SGDTerms

    def __call__(
        self, p: torch.Tensor, residual: torch.Tensor | None, spec: PQSpec, seed: int
    ) -> Applied:
        return sgd_compress_(
            p, residual, self.grad, self.momentum_buffer, self.first, self.terms, spec, seed=seed
        )


@dataclass(frozen=True)
class AdamUpdate:
    """One tensor's Adam or AdamW step, to fuse with its compression."""

    grad: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    terms: AdamTerms

    def __call__(
        self, p: torch.Tensor, residual: torch.Tensor | None, spec: PQSpec, seed: int
    ) -> Applied:
        return adam_compress_(
            p, residual, self.grad, self.exp_avg, self.exp_avg_sq, self.terms, spec, seed=seed
        )


FusedUpdate = SGDUpdate | AdamUpdate


def memory_flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of ``t``'s elements in the order they lie in memory, when they fill a block
    without gaps or overlaps (contiguous, channels_last, any permutation of a contiguous
    layout); None otherwise. P->Q is element by element apart from whole-tensor statistics,
    so the kernels may walk a tensor in memory order whatever its layout."""
    if t.is_contiguous():
        return t.view(-1)
    order = sorted(range(t.dim()), key=lambda d: (t.stride(d), t.size(d)), reverse=True)
    dense = t.permute(order)
    return dense.view(-1) if dense.is_contiguous() else None


def numba_eligible(p: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether the numba kernels can take ``p`` (a dense float32 CPU tensor, see
    :func:`memory_flat`) together with ``others`` (residual, gradient, optimizer state), which
    they pair element by element in memory order: the same shape and strides as ``p``."""
    if p.device.type != "cpu" or p.dtype != torch.float32 or memory_flat(p) is None:
        return False
    return all(
        o.device.type == "cpu"
        and o.dtype == torch.float32
        and o.shape == p.shape
        and o.stride() == p.stride()
        for o in others
    )


def compress_(
    p: torch.Tensor,
    residual: torch.Tensor | None,
    spec: PQSpec,
    *,
    seed: int = 0,
    backend: str = "auto",
    generator: torch.Generator | None = None,
) -> Applied:
    """Compress ``p`` in place. With ``residual`` (latent mode) the float weights are
    ``w = p + residual``; afterwards ``p = C(w)`` and ``residual = w - C(w)``.

    The numba kernels take dense float32 CPU tensors, contiguous or not (``numba_eligible``;
    they walk memory order, so a stochastic rounding's random stream follows the layout);
    everything else (a GPU, another dtype, ``backend="torch"``) takes the device path (``ops.device``), which returns a
    :class:`~pqcompress.ops.device.DeviceApplied` and reads nothing back to the host. Raises
    NonFiniteError (leaving ``p`` untouched) if the weights are not finite; on a GPU the
    returned ``finite`` flag stands in for the error (the compressor reads it every few
    steps).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} unknown; expected one of {BACKENDS}")
    together = (p,) if residual is None else (p, residual)
    use_numba = backend == "numba" or (backend == "auto" and numba_eligible(*together))
    if use_numba and residual is not None and not numba_eligible(*together):
        use_numba = False
    if use_numba:
        return _compress_numba(p, residual, spec, seed)
    from pqcompress.ops.device import compress_device_

    applied = compress_device_(
        p, residual, spec.kind, spec.alpha, spec.bits, spec.rounding, generator
    )
    if p.device.type == "cpu" and not bool(applied.finite):  # on the CPU, reading is free
        raise NonFiniteError("tensor has non-finite values (NaN or inf); cannot compress it")
    return applied  # type: ignore[return-value]


def _kernel_args(spec: PQSpec, seed: int) -> tuple[Any, ...]:
    """The compression settings the numba kernels take as one tuple, from ``spec``: (kind id,
    alpha, bits, e_pos, e_neg, d, stochastic, offset is beta, clamp, seed)."""
    e_pos, e_neg, d = rounding_terms(spec.rounding)
    top = grid_terms(spec.kind, spec.bits, 1.0)[1] if spec.kind not in ("prune", "none") else 0.0
    return (
        KIND_ID[spec.kind],
        float(spec.alpha),
        int(spec.bits),
        float(e_pos),
        float(e_neg),
        float(d),
        spec.rounding == "stochastic",
        spec.kind == "exact",
        float(top),
        np.uint64(seed & 0xFFFFFFFFFFFFFFFF),
    )


def _applied(result: tuple[Any, ...]) -> Applied:
    beta, scale, std, maxabs, finite = result
    if not finite:
        raise NonFiniteError("weights hold NaN or inf")
    return Applied(float(beta), float(scale), float(std), float(maxabs))


def _fused_applied(
    result: tuple[Any, ...], p: torch.Tensor, residual: torch.Tensor | None
) -> Applied:
    """``_applied`` of a fused update. When the weights were not finite, a latent kernel left
    them in the residual; they move to ``p`` (residual zero) so that ``p + residual`` are the
    updated float weights either way and ``p`` holds them, as in place."""
    if not result[-1] and residual is not None:
        p.copy_(residual)
        residual.zero_()
    return _applied(result)


def sgd_compress_(
    p: torch.Tensor,
    residual: torch.Tensor | None,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    first: bool,
    sgd: SGDTerms,
    spec: PQSpec,
    *,
    seed: int = 0,
) -> Applied:
    """One SGD step of ``p`` (the update torch.optim.SGD makes, in float32) fused with one
    ``compress_`` of the result: numba, contiguous float32 CPU tensors only.

    ``momentum_buffer`` (needed when momentum is nonzero, None otherwise) is updated in place;
    ``first`` marks the first step, on which torch sets the buffer to the gradient. Raises
    NonFiniteError if the updated weights are not finite (``p`` then holds them uncompressed,
    and a residual is zero).
    """
    from pqcompress.ops import kernels

    if (momentum_buffer is None) != (sgd.momentum == 0):
        raise ValueError("a momentum buffer is needed exactly when momentum is nonzero")
    buf = p if momentum_buffer is None else momentum_buffer
    flat, res, g, b = _flats("the fused SGD step", p, residual, grad, buf)
    terms = (
        *map(float, (sgd.lr, sgd.momentum, sgd.dampening, sgd.weight_decay)),
        bool(sgd.nesterov),
    )
    pq = _kernel_args(spec, seed)
    result = kernels.sgd_compress_flat(
        flat, res, residual is not None, g, b, bool(first), terms, pq
    )
    return _fused_applied(result, p, residual)


def adam_compress_(
    p: torch.Tensor,
    residual: torch.Tensor | None,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    adam: AdamTerms,
    spec: PQSpec,
    *,
    seed: int = 0,
) -> Applied:
    """One Adam or AdamW step of ``p`` (torch's single-tensor update, in float32; ``exp_avg``
    and ``exp_avg_sq`` are updated in place) fused with one ``compress_`` of the result, as
    :func:`sgd_compress_`: numba, contiguous float32 CPU tensors only."""
    from pqcompress.ops import kernels

    if adam.step < 1:
        raise ValueError(f"Adam's step count starts at 1, got {adam.step}")
    flat, res, g, m, v = _flats("the fused Adam step", p, residual, grad, exp_avg, exp_avg_sq)
    # torch's scalars, in float64 before they meet float32 tensors
    bias1 = 1.0 - adam.beta1**adam.step
    bias2 = 1.0 - adam.beta2**adam.step
    scalars = (
        1.0 - adam.beta1,
        adam.beta2,
        1.0 - adam.beta2,
        adam.eps,
        bias2**0.5,
        adam.lr / bias1,
        adam.weight_decay,
        1.0 - adam.lr * adam.weight_decay,
    )
    terms = (*map(float, scalars), bool(adam.decoupled))
    pq = _kernel_args(spec, seed)
    result = kernels.adam_compress_flat(flat, res, residual is not None, g, m, v, terms, pq)
    return _fused_applied(result, p, residual)


def _flats(
    what: str, p: torch.Tensor, residual: torch.Tensor | None, *more: torch.Tensor
) -> list[Any]:
    """Flat numpy views (memory order) of ``p``, the residual (``p`` again without one) and
    ``more``, for the kernels; ValueError unless ``numba_eligible`` takes them together."""
    tensors = [p, p if residual is None else residual, *more]
    if not numba_eligible(*tensors):
        raise ValueError(f"{what} needs dense float32 CPU tensors of one layout (the same strides)")
    return [_numpy(t) for t in tensors]


def _numpy(t: torch.Tensor) -> Any:
    flat = memory_flat(t.detach())
    assert flat is not None  # numba_eligible checked it
    return flat.numpy()


def _compress_numba(
    p: torch.Tensor, residual: torch.Tensor | None, spec: PQSpec, seed: int
) -> Applied:
    from pqcompress.ops import kernels

    flat, res = _flats("the numba backend", p, residual)
    return _applied(
        kernels.compress_flat(flat, res, residual is not None, _kernel_args(spec, seed))
    )
