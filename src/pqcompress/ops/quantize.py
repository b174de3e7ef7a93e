"""Uniform symmetric b-bit quantization: q = max|W| / (2^(b-1) - 1), codes in -L..L."""

from __future__ import annotations

import torch

from pqcompress.ops.pq import KIND_ID, compute_params, decode, encode


def quantize_codes(
    w: torch.Tensor,
    bits: int,
    rounding: str = "nearest",
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, float]:
    """Q(W, q): integer codes (int32) and the float32 step ``q``; ``codes * q`` is the value."""
    x = w.detach().float()
    maxabs = float(x.abs().max()) if x.numel() else 0.0
    _, scale = compute_params(0.0, maxabs, 0.0, bits, KIND_ID["quantize"])
    codes = encode(x, "quantize", bits, float(scale), 0.0, rounding, generator)
    assert codes is not None
    return codes, float(scale)


def dequantize(
    codes: torch.Tensor, scale: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Float values of uniform codes (exactly what the compressor stores)."""
    return decode(codes, "quantize", scale, 0.0, dtype)
