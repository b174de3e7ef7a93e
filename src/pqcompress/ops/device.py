"""P->Q on a tensor that lives on an accelerator, with no host synchronisation.

The CPU path reads the statistics back (``float(std)``, ``float(max|W|)``) to derive the
threshold and scale as Python floats. On a GPU every such read waits for the device, twice
per tensor per step. Here the statistics, the threshold and the scale stay 0-dim tensors on
the device, and the arithmetic is the same as :func:`pqcompress.ops.pq.compute_params`,
``encode`` and ``decode``: float64 statistics, float32 parameters, the same rounding terms.
The values are therefore bit for bit those of the host path (tested on the CPU, where both
run). A tensor that holds NaN or inf is left as it was, and the application says so in
:attr:`DeviceApplied.finite`. The compressor reads that flag back once every few steps,
which is the one synchronisation it needs. :meth:`DeviceApplied.host` turns the parameters
into an :class:`~pqcompress.ops.fused.Applied` when a report or an export needs floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pqcompress.ops.pq import EXACT, KIND_ID, LITERAL, PRUNE, QUANTIZE, UNIFORM, max_level
from pqcompress.ops.rounding import rounding_terms


@dataclass(frozen=True)
class DeviceApplied:
    """The parameters of one application, as 0-dim tensors on the tensor's device."""

    threshold: torch.Tensor  # float32
    scale: torch.Tensor  # float32
    std: torch.Tensor  # float64
    maxabs: torch.Tensor  # float32
    finite: torch.Tensor  # bool: the weights were finite (else they were left unchanged)

    def host(self) -> object:
        """The same parameters as Python floats (one read from the device)."""
        from pqcompress.ops.fused import Applied

        values = torch.stack(
            [self.threshold.double(), self.scale.double(), self.std, self.maxabs.double()]
        ).tolist()
        return Applied(float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def device_params(
    std: torch.Tensor, maxabs: torch.Tensor, alpha: float, bits: int, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(beta, scale) as float32 0-dim tensors: ``compute_params`` without leaving the device."""
    k = KIND_ID[kind]
    top = max_level(bits)
    f32 = torch.float32
    zero = torch.zeros((), dtype=f32, device=std.device)
    beta = (std * alpha).to(f32) if k in (EXACT, LITERAL, UNIFORM, PRUNE) else zero
    if k in (UNIFORM, QUANTIZE):
        scale = (maxabs.double() / top).to(f32)
    elif k in (EXACT, LITERAL):
        span = maxabs.double() - beta.double()
        scale = torch.where(span > 0, (span / top).to(f32), zero)
        if k == LITERAL:  # every survivor at |w| == max: the plain step
            scale = torch.where(scale == 0, (maxabs.double() / top).to(f32), scale)
    else:
        scale = zero
    return beta, scale


def compress_device_(
    p: torch.Tensor,
    residual: torch.Tensor | None,
    kind: str,
    alpha: float,
    bits: int,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> DeviceApplied:
    """Compress ``p`` in place (latent: ``w = p + residual``; afterwards ``p = C(w)`` and
    ``residual = w - C(w)``) with every statistic and parameter kept on the device."""
    with torch.no_grad():
        w = p.detach().float() if residual is None else p.detach().float() + residual.float()
        f32 = torch.float32
        dev = w.device
        if w.numel() > 1:
            std = torch.std(w.double(), correction=0)
        else:
            std = torch.zeros((), dtype=torch.float64, device=dev)
        maxabs = w.abs().max() if w.numel() else torch.zeros((), dtype=f32, device=dev)
        finite = torch.isfinite(std) & torch.isfinite(maxabs)
        beta, scale = device_params(std, maxabs, alpha, bits, kind)
        a = w.abs()
        zero = torch.zeros((), dtype=f32, device=dev)
        if kind == "prune":
            values = torch.where(a >= beta, w, zero)
        else:
            exact = kind == "exact"
            offset = beta if exact else zero
            top = float(max_level(bits)) if kind != "literal" else math.inf
            e_pos, e_neg, d = rounding_terms(rounding)
            neg = w < 0
            e = torch.where(
                neg,
                torch.tensor(e_neg, dtype=f32, device=dev),
                torch.tensor(e_pos, dtype=f32, device=dev),
            )
            u = (a - offset) / torch.where(scale > 0, scale, torch.ones((), dtype=f32, device=dev))
            if rounding == "stochastic":
                dd = torch.rand(w.shape, generator=generator, device=dev, dtype=f32)
            else:
                dd = torch.tensor(d, dtype=f32, device=dev)
            m = torch.clamp(e * torch.floor(e * u + dd), 0, top)
            m = torch.where(scale > 0, m, zero)
            mag = offset + scale * m
            keep = (a >= beta) & (mag != 0)
            values = torch.where(keep, torch.where(neg, -mag, mag), zero)
        new_p = torch.where(finite, values.to(p.dtype), p)
        if residual is not None:
            residual.copy_(torch.where(finite, w - values, residual.float()).to(residual.dtype))
        p.copy_(new_p)
    return DeviceApplied(beta, scale, std, maxabs, finite)
