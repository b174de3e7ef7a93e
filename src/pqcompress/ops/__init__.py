"""Pure tensor math: pruning thresholds, rounding, P->Q forms with exact integer codes."""

from pqcompress.ops.fused import Applied, PQSpec, compress_
from pqcompress.ops.pq import (
    KINDS,
    NonFiniteError,
    PQResult,
    codes_from_values,
    decode,
    encode,
    level_count_bound,
    max_level,
    pq_compress,
    resolve_kind,
)
from pqcompress.ops.prune import layer_std, prune_by_std, prune_mask, std_threshold
from pqcompress.ops.quantize import dequantize, quantize_codes
from pqcompress.ops.rounding import ROUNDINGS, rounding_terms

__all__ = [
    "KINDS",
    "ROUNDINGS",
    "Applied",
    "NonFiniteError",
    "PQResult",
    "PQSpec",
    "codes_from_values",
    "compress_",
    "decode",
    "dequantize",
    "encode",
    "layer_std",
    "level_count_bound",
    "max_level",
    "pq_compress",
    "prune_by_std",
    "prune_mask",
    "quantize_codes",
    "resolve_kind",
    "rounding_terms",
    "std_threshold",
]
