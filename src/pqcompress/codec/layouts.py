"""Where the nonzero elements of a tensor are: dense, bitmap, CSR or CSC (docs/format.md §4).

A tensor of ``n`` elements is viewed as a matrix ``rows x cols`` with ``rows = shape[0]``
for tensors of two or more dimensions (``1`` otherwise) and ``cols = n // rows``.

- ``dense``: every element, in row-major (C) order; zeros are stored as elements.
- ``bitmap``: a mask of ``n`` bits (LSB-first bit packing, 1 = element stored), then the
  stored elements in row-major order.
- ``csr``: ``indptr`` (rows + 1 entries), column ``indices`` (one per stored element), then
  the elements in row-major order. ``csc``: ``indptr`` (cols + 1), row ``indices``, elements in
  column-major order. Index arrays use the narrowest unsigned little-endian integer type
  that holds their largest possible value (recorded as ``dtype`` of the section).
"""

from __future__ import annotations

import numpy as np

from pqcompress.codec.errors import FormatError

LAYOUTS: tuple[str, ...] = ("dense", "bitmap", "csr", "csc")
INDEX_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
}


def geometry(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, cols) of the matrix view used by CSR/CSC."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    rows = int(shape[0]) if len(shape) >= 2 else 1
    if n == 0:
        return rows, 0
    return rows, n // rows


def index_dtype(largest: int) -> str:
    """Name of the narrowest unsigned type holding ``largest``."""
    for name, dt in INDEX_DTYPES.items():
        if largest <= np.iinfo(dt).max:
            return name
    raise ValueError(f"index {largest} does not fit 64 bits")


def split(
    layout: str, mask: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray | None, dict[str, tuple[bytes, str]]]:
    """(order, sections): flat indices of the stored elements (None = all, dense) and the
    structure sections ``{role: (bytes, dtype_name)}`` of ``layout``."""
    n = mask.size
    if layout == "dense":
        return None, {}
    if layout == "bitmap":
        bits = np.packbits(mask, bitorder="little").tobytes()
        return np.flatnonzero(mask), {"mask": (bits, "bits")}
    rows, cols = geometry(shape)
    if layout == "csr":
        order = np.flatnonzero(mask)
        outer, inner = order // max(cols, 1), order % max(cols, 1)
        count_outer, minor_len = rows, cols
    elif layout == "csc":
        t = mask.reshape(rows, cols).T.reshape(-1)
        pos = np.flatnonzero(t)
        outer, inner = pos // max(rows, 1), pos % max(rows, 1)  # col, row
        order = inner * cols + outer
        count_outer, minor_len = cols, rows
    else:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    counts = np.bincount(outer, minlength=count_outer) if n else np.zeros(count_outer, int)
    indptr = np.zeros(count_outer + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    p_name = index_dtype(int(order.size))
    i_name = index_dtype(max(minor_len - 1, 0))
    return order, {
        "indptr": (indptr.astype(INDEX_DTYPES[p_name]).tobytes(), p_name),
        "indices": (inner.astype(INDEX_DTYPES[i_name]).tobytes(), i_name),
    }


def structure_sizes(layout: str, shape: tuple[int, ...], nnz: int) -> dict[str, int | None]:
    """Decoded byte size of each structure section (None: depends on the index dtype)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    rows, cols = geometry(shape)
    if layout == "dense":
        return {}
    if layout == "bitmap":
        return {"mask": (n + 7) // 8}
    outer = rows if layout == "csr" else cols
    return {"indptr": outer + 1, "indices": nnz}  # element counts, times the itemsize


def positions(
    layout: str, shape: tuple[int, ...], nnz: int, sections: dict[str, tuple[bytes, str]]
) -> np.ndarray | None:
    """Where the stored elements go: a bool mask or flat int64 indices (None = dense)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if layout == "dense":
        return None
    if layout == "bitmap":
        raw, _ = sections["mask"]
        mask = np.unpackbits(np.frombuffer(raw, np.uint8), count=n, bitorder="little").view(bool)
        if int(np.count_nonzero(mask)) != nnz:
            raise FormatError(f"bitmap marks {int(np.count_nonzero(mask))} elements, nnz={nnz}")
        return mask
    rows, cols = geometry(shape)
    outer_len, minor_len = (rows, cols) if layout == "csr" else (cols, rows)
    ptr_raw, ptr_dt = sections["indptr"]
    idx_raw, idx_dt = sections["indices"]
    indptr = np.frombuffer(ptr_raw, INDEX_DTYPES[ptr_dt]).astype(np.int64)
    inner = np.frombuffer(idx_raw, INDEX_DTYPES[idx_dt]).astype(np.int64)
    if indptr.size != outer_len + 1 or inner.size != nnz:
        raise FormatError(f"{layout} index arrays have the wrong length")
    counts = np.diff(indptr)
    if indptr[0] != 0 or indptr[-1] != nnz or (counts < 0).any():
        raise FormatError(f"{layout} indptr is not a valid pointer array for nnz={nnz}")
    if inner.size and int(inner.max()) >= minor_len:
        raise FormatError(f"{layout} index out of range (>= {minor_len})")
    outer = np.repeat(np.arange(outer_len, dtype=np.int64), counts)
    if layout == "csr":
        return outer * cols + inner
    return inner * cols + outer
