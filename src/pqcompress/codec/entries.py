"""Torch-free facts about manifest entries: dtype names, item sizes, code kinds, counts."""

from __future__ import annotations

from typing import Any

import numpy as np

CODE_KINDS = ("exact", "literal", "uniform", "quantize")
# forms whose values are ``scale * code`` on a zero-containing grid: int8 kernels run them as
# they are when the codes fit int8 (<= 8 bits); the one home of that rule
INT8_NATIVE_KINDS = ("uniform", "quantize")
INT8_MAX_BITS = 8


def runs_on_int8(kind: str | None, bits: object) -> bool:
    """Whether codes of this form and bit width run natively on int8 kernels."""
    if kind not in INT8_NATIVE_KINDS or isinstance(bits, bool):
        return False
    try:
        return bool(int(bits) <= INT8_MAX_BITS)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def entry_runs_on_int8(entry: dict[str, Any]) -> bool:
    """A manifest entry stored as codes that run natively on int8 kernels."""
    return entry.get("encoding") == "codes" and runs_on_int8(entry.get("kind"), entry.get("bits"))


# dtype name -> element size in bytes (the names docs/format.md §2 lists)
ITEMSIZE: dict[str, int] = {
    "float32": 4,
    "float64": 8,
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "bool": 1,
}


MAX_ELEMENTS = 1 << 40  # per tensor: beyond any model; keeps every size an exact int64
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
FLOAT32_MAX = 3.4028234663852886e38


def numel(shape: list[int]) -> int:
    """Elements of ``shape`` (exact: Python integers, never a wrapped int64)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n


def storage_allowed(dtype: str, storage: str) -> bool:
    """A values entry stores its own dtype, or a float dtype as float16/bfloat16 (lossy)."""
    return storage == dtype or (dtype in FLOAT_DTYPES and storage in ("float16", "bfloat16"))


def invalid_symbols(codes: np.ndarray, smap: object, kind: str, bits: int) -> np.ndarray:
    """Mask of the symbols ``0..len(codes)-1`` (decoded to ``codes``) that no valid writer
    produces: beyond the map's largest symbol, or a code outside the form's range."""
    symbols = np.arange(codes.size)
    bad = symbols > int(smap.max_symbol)  # type: ignore[attr-defined]
    limit = code_limit(kind, bits)
    if limit is not None:
        bad |= np.abs(codes) > limit
    out: np.ndarray = bad
    return out


def check_codes(
    name: str, symbols: np.ndarray, codes: np.ndarray, smap: object, kind: str, bits: int
) -> None:
    """FormatError when a symbol or code (wide codes, decoded without a lookup table) is one
    no valid writer produces."""
    from pqcompress.codec.errors import FormatError

    if not symbols.size:
        return
    limit = code_limit(kind, bits)
    too_big = int(symbols.max()) > int(smap.max_symbol)  # type: ignore[attr-defined]
    if too_big or (limit is not None and int(np.abs(codes).max()) > limit):
        raise FormatError(f"tensor '{name}': a code outside the {kind} form's range")


def check_decoded(name: str, values: np.ndarray) -> None:
    """FormatError unless a decoded float tensor is all finite (codes, scale and threshold in
    range: validation and lookup tables mark anything else NaN)."""
    from pqcompress.codec.errors import FormatError

    if values.dtype.kind == "f" and values.size and not bool(np.isfinite(values).all()):
        raise FormatError(
            f"tensor '{name}' decodes to NaN or inf: a code outside its form's range or a "
            "scale/threshold out of range (corrupt or tampered file)"
        )


def code_limit(kind: str, bits: int) -> int | None:
    """Largest |code| a writer produces for this form (docs/format.md §4); None: unbounded."""
    top = (1 << (bits - 1)) - 1
    if kind in ("uniform", "quantize"):
        return top
    if kind == "exact":
        return top + 1
    return None


def value_count(entry: dict[str, Any]) -> int:
    """Elements stored in the ``values`` section: all of them (dense) or the nonzeros."""
    return numel(entry["shape"]) if entry["layout"] == "dense" else int(entry["nnz"])


def max_level(bits: int) -> int:
    """L = 2^(b-1) - 1 (as ``pqcompress.ops.pq.max_level``, without importing torch)."""
    return (1 << (bits - 1)) - 1
