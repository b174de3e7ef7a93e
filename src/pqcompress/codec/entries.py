"""Torch-free facts about manifest entries: dtype names, item sizes, code kinds, counts."""

from __future__ import annotations

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
        return int(bits) <= INT8_MAX_BITS  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def entry_runs_on_int8(entry: dict) -> bool:
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


def numel(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def value_count(entry: dict) -> int:
    """Elements stored in the ``values`` section: all of them (dense) or the nonzeros."""
    return numel(entry["shape"]) if entry["layout"] == "dense" else int(entry["nnz"])


def max_level(bits: int) -> int:
    """L = 2^(b-1) - 1 (as ``pqcompress.ops.pq.max_level``, without importing torch)."""
    return (1 << (bits - 1)) - 1
