"""Torch-free facts about manifest entries: dtype names, item sizes, code kinds, counts."""

from __future__ import annotations

import numpy as np

CODE_KINDS = ("exact", "literal", "uniform", "quantize")
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
