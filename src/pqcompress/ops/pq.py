"""Prune-then-quantize (P->Q) in its three forms, with integer codes that decode bit-exactly.

Forms (docs/method.md §1), for a tensor W with beta = alpha * std(W), M = max|W|,
L = 2^(b-1) - 1 and a rounding r:

- ``exact``   (b-bit exact dead zone): q' = (M - beta) / L; a survivor |w| >= beta becomes
  ``sign(w) * (beta + q' * m)`` with ``m = r((|w| - beta) / q')`` clamped to 0..L.
  Code ``c = sign(w) * (m + 1)`` in ±1..±(L+1), 0 for pruned: 2^b nonzero levels,
  i.e. 1 sign bit + (b-1) magnitude bits per NONZERO weight; zeros live in the sparsity
  structure.
- ``literal`` (the studies' text read literally): q' as above, ``c = r(P(W)/q')`` with no
  offset and no clamp, value ``c * q'``; the largest codes exceed L, so it does not fit b bits.
- ``uniform`` (int8-kernel friendly): prune at beta, then ``c = r(P(W)/q)`` with the plain
  ``q = M / L``, clamped to -L..L, value ``c * q``; 2^b - 1 levels including zero.

Also ``prune`` (pruning only, survivors keep their float value) and ``quantize``
(uniform quantization with no pruning). Every function here is pure. The compressor's fused
kernels implement the same arithmetic and are tested to match these bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pqcompress.ops.prune import layer_std
from pqcompress.ops.rounding import rounding_terms

KINDS: tuple[str, ...] = ("exact", "literal", "uniform", "prune", "quantize", "none")
KIND_ID: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
EXACT, LITERAL, UNIFORM, PRUNE, QUANTIZE, NONE = range(6)


def max_level(bits: int) -> int:
    """L = 2^(b-1) - 1, the largest code magnitude of a symmetric b-bit grid."""
    return (1 << (bits - 1)) - 1


def resolve_kind(mode: str, form: str, alpha: float, bits: int) -> str:
    """What one application does, from the config's mode/form/alpha/bits."""
    quantize = bits != 32
    if mode == "prune" or (mode == "pq" and not quantize):
        return "prune" if alpha > 0 else "none"
    if mode == "quantize":
        return "quantize" if quantize else "none"
    return form


def grid_collapse(kind: str, bits: int, alpha: float) -> str | None:
    """Why this grid would round most weights of a bell-shaped layer to zero, or None.

    At 2 bits a grid scaled by max|W| has a single nonzero magnitude: ``quantize`` and
    ``uniform`` (q = max|W|) round every |w| < max|W|/2 to 0, and ``exact`` at alpha 0
    (beta = 0) places its lower magnitude level at 0. On trained ResNet-20 layers that is
    98% zeros. ``exact`` with alpha > 0 is a ternary code instead (levels 0, +-beta, +-max|W|).
    """
    if bits != 2:
        return None
    if kind in ("quantize", "uniform") or (kind == "exact" and alpha == 0):
        return (
            f"a 2-bit {kind} grid at alpha {alpha:g} has one nonzero level near max|W| and "
            "rounds most weights to 0 (98% of a trained ResNet-20's); for 2 bits use "
            "form exact with alpha > 0 (0.8 keeps the weights closest), or more bits"
        )
    return None


def compute_params(
    std: float, maxabs: float, alpha: float, bits: int, kind: int
) -> tuple[np.float32, np.float32]:
    """(beta, scale) as float32 values from float64 statistics.

    Plain arithmetic on purpose: numba compiles this same function for the fused kernels,
    so both paths derive bit-identical parameters from the same statistics.
    """
    top = (1 << (bits - 1)) - 1  # max_level(bits), inline so numba can compile this function
    beta = np.float32(0.0)
    if kind == EXACT or kind == LITERAL or kind == UNIFORM or kind == PRUNE:  # noqa: SIM109 (numba)
        beta = np.float32(alpha * std)
    scale = np.float32(0.0)
    if kind == UNIFORM or kind == QUANTIZE:  # noqa: SIM109
        scale = np.float32(maxabs / top)
    elif kind == EXACT or kind == LITERAL:  # noqa: SIM109
        span = np.float64(maxabs) - np.float64(beta)
        if span > 0.0:
            scale = np.float32(span / top)
        if kind == LITERAL and scale == 0.0:
            # degenerate: every survivor has |w| == max; fall back to the plain step
            scale = np.float32(maxabs / top)
    return beta, scale


@dataclass(frozen=True)
class PQResult:
    """A compressed tensor: float values plus the integer codes and parameters behind them.

    ``codes`` is None for ``prune``/``none`` (values stay float). For the other kinds,
    ``decode(codes, kind, scale, threshold) == values`` bit for bit.
    """

    values: torch.Tensor
    codes: torch.Tensor | None
    kind: str
    bits: int
    scale: float
    threshold: float

    def decode(self) -> torch.Tensor:
        if self.codes is None:
            return self.values.clone()
        return decode(
            self.codes, self.kind, self.scale, self.threshold, self.values.dtype, self.bits
        )


class NonFiniteError(ValueError):
    """A tensor holds NaN or inf (typically: training diverged)."""


def tensor_stats(x: torch.Tensor) -> tuple[float, float]:
    """(population std in float64, max|x|): the statistics a P->Q application uses."""
    std = layer_std(x)
    maxabs = float(x.abs().max()) if x.numel() else 0.0
    if not (math.isfinite(std) and math.isfinite(maxabs)):
        raise NonFiniteError("tensor has non-finite values (NaN or inf); cannot compress it")
    return std, maxabs


def pq_compress(
    w: torch.Tensor,
    alpha: float,
    bits: int,
    *,
    form: str = "exact",
    mode: str = "pq",
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    stats: tuple[float, float] | None = None,
) -> PQResult:
    """Apply P->Q (or prune-only / quantize-only) to ``w``; returns values, codes and params.

    The statistics (std, max|W|) are taken from ``w`` itself, as the method prescribes;
    ``stats=(std, maxabs)`` overrides them (to reproduce another backend's parameters).
    """
    kind = resolve_kind(mode, form, alpha, bits)
    return compress_kind(w, kind, alpha, bits, rounding, generator, stats)


def compress_kind(
    w: torch.Tensor,
    kind: str,
    alpha: float,
    bits: int,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
    stats: tuple[float, float] | None = None,
) -> PQResult:
    """One application of an already resolved ``kind`` (see ``resolve_kind``) to ``w``."""
    x = w.detach().float() if w.dtype != torch.float32 else w.detach()
    if kind == "none":
        return PQResult(x.clone(), None, kind, 32, 0.0, 0.0)
    std, maxabs = tensor_stats(x) if stats is None else stats
    beta32, scale32 = compute_params(std, maxabs, alpha, bits, KIND_ID[kind])
    beta, scale = float(beta32), float(scale32)
    codes = encode(x, kind, bits, scale, beta, rounding, generator)
    if codes is None:
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        values = torch.where(x.abs() >= beta, x, zero)
    else:
        values = decode(codes, kind, scale, beta, x.dtype, bits)
    return PQResult(values, codes, kind, bits, scale, beta)


def grid_terms(kind: str, bits: int, threshold: float) -> tuple[float, float, int]:
    """(offset, clamp, code_offset): magnitude = offset + scale * m, m clamped to 0..clamp,
    code = sign * (m + code_offset)."""
    if kind == "exact":
        return threshold, float(max_level(bits)), 1
    if kind == "literal":
        return 0.0, math.inf, 0
    return 0.0, float(max_level(bits)), 0


def encode(
    x: torch.Tensor,
    kind: str,
    bits: int,
    scale: float,
    threshold: float,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """Integer codes (int32) of ``x`` for the given parameters; None for float kinds."""
    if kind in ("prune", "none"):
        return None
    dev = x.device
    f32 = torch.float32
    off, top, code_off = grid_terms(kind, bits, threshold)
    offset = torch.tensor(off, dtype=f32, device=dev)
    q = torch.tensor(scale, dtype=f32, device=dev)
    beta = torch.tensor(threshold, dtype=f32, device=dev)
    a = x.abs()
    neg = x < 0
    if scale > 0:
        e_pos, e_neg, d = rounding_terms(rounding)
        e = torch.where(
            neg,
            torch.tensor(e_neg, dtype=f32, device=dev),
            torch.tensor(e_pos, dtype=f32, device=dev),
        )
        u = (a - offset) / q
        if rounding == "stochastic":
            dd = torch.rand(x.shape, generator=generator, device=dev, dtype=f32)
        else:
            dd = torch.tensor(d, dtype=f32, device=dev)
        m = torch.clamp(e * torch.floor(e * u + dd), 0, top)
    else:
        m = torch.zeros_like(a)
    mag = offset + q * m
    keep = (a >= beta) & (mag != 0)
    sign = torch.where(neg, -1, 1).to(torch.int32)
    codes = sign * (m.to(torch.int32) + code_off)
    return torch.where(keep, codes, torch.zeros((), dtype=torch.int32, device=dev))


def decode(
    codes: torch.Tensor,
    kind: str,
    scale: float,
    threshold: float,
    dtype: torch.dtype = torch.float32,
    bits: int = 8,
) -> torch.Tensor:
    """Float values of integer codes: the inverse the file format and the kernels agree on.

    ``magnitude = offset + scale * (|c| - code_offset)`` (offset = threshold and
    code_offset = 1 for ``exact``, 0 and 0 otherwise), value = sign(c) * magnitude, 0 for c = 0.
    """
    if kind not in ("exact", "literal", "uniform", "quantize"):
        raise ValueError(f"kind {kind!r} has no integer codes")
    off, _, code_off = grid_terms(kind, bits, threshold)
    dev = codes.device
    q = torch.tensor(scale, dtype=torch.float32, device=dev)
    offset = torch.tensor(off, dtype=torch.float32, device=dev)
    m = (codes.abs() - code_off).to(torch.float32)
    mag = offset + q * m
    out = torch.where(codes < 0, -mag, mag)
    out = torch.where(codes == 0, torch.zeros((), dtype=torch.float32, device=dev), out)
    return out.to(dtype)


def codes_from_values(
    values: torch.Tensor, kind: str, bits: int, scale: float, threshold: float
) -> torch.Tensor:
    """Recover the codes of already-compressed ``values`` and check they decode exactly, in
    the values' own dtype: float32 values bit for bit; bfloat16/float16 values (a model trained
    in half precision, whose weights are the grid rounded to that dtype) when the decoded codes
    cast to that dtype give them back.

    Raises ValueError if ``values`` are not on the grid the parameters describe.
    """
    own = values.detach()
    x = own.float()
    if kind not in ("exact", "literal", "uniform", "quantize"):
        raise ValueError(f"kind {kind!r} has no integer codes")
    off, _, code_off = grid_terms(kind, bits, threshold)
    if scale > 0:
        m = torch.round((x.abs() - off) / scale).clamp_min(0)
    else:
        m = torch.zeros_like(x)
    sign = torch.where(x < 0, -1, 1).to(torch.int32)
    codes = torch.where(x != 0, sign * (m.to(torch.int32) + code_off), 0).to(torch.int32)
    back = decode(codes, kind, scale, threshold, bits=bits)
    if own.dtype in (torch.bfloat16, torch.float16):
        back, x = back.to(own.dtype), own
    if not torch.equal(back, x):
        bad = int((back != x).sum())
        raise ValueError(
            f"{bad} of {x.numel()} values are not on the {kind} grid "
            f"(scale={scale!r}, threshold={threshold!r}); were they compressed with these parameters?"
        )
    return codes


def level_count_bound(kind: str, bits: int) -> int | None:
    """Most distinct values a tensor of ``kind`` may hold (zero included); None if unbounded."""
    if kind == "exact":
        return (1 << bits) + 1
    if kind in ("uniform", "quantize"):
        return (1 << bits) - 1
    return None
