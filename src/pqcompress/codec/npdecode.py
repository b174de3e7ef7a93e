"""Decoding one manifest entry with numpy only (no torch, no numba): the portable reader's path.

Bit-identical to ``tensorcode.decode_tensor``: the same symbol maps, the same float32 decode
formula evaluated once per possible symbol, the same layouts; slower (no fused kernels).
"""

from __future__ import annotations

import numpy as np

from pqcompress.codec import bitpack, layouts
from pqcompress.codec.entries import (
    ITEMSIZE,
    check_codes,
    check_decoded,
    invalid_symbols,
    numel,
    value_count,
)
from pqcompress.codec.errors import FormatError
from pqcompress.codec.symbols import SymbolMap

LUT_MAX_WIDTH = 18  # as tensorcode: a lookup table of 2**width values up to this width
_NUMPY = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a manifest dtype name (bfloat16 through the ml_dtypes package)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise FormatError(
                "this file holds bfloat16 tensors; numpy reads them with the 'ml_dtypes' "
                "package (pip install ml_dtypes)"
            ) from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_NUMPY[name])


def decode_codes(codes: np.ndarray, kind: str, scale: float, threshold: float, bits: int):
    """Float32 values of integer codes: ``pqcompress.ops.pq.decode`` in numpy, op for op
    (int32 codes, float32 arithmetic, each operation rounded separately)."""
    if kind == "exact":
        offset, code_offset = threshold, 1
    else:
        offset, code_offset = 0.0, 0
    c = codes.astype(np.int32)
    m = (np.abs(c) - np.int32(code_offset)).astype(np.float32)
    mag = np.float32(offset) + np.float32(scale) * m
    out = np.where(c < 0, -mag, mag)
    return np.where(c == 0, np.float32(0.0), out).astype(np.float32)


def _lut(entry: dict, smap: SymbolMap) -> np.ndarray:
    table = smap.decode(np.arange(1 << smap.width, dtype=np.int64))
    invalid = invalid_symbols(table, smap, entry["kind"], int(entry["bits"]))
    table = np.clip(table, -(2**31), 2**31 - 1)
    values = decode_codes(
        table, entry["kind"], float(entry["scale"]), float(entry["threshold"]), int(entry["bits"])
    )
    values[invalid] = np.nan  # a symbol no writer produces: caught by the finiteness check
    return values


def _positions(entry: dict, raws: dict[str, bytes]):
    struct = {
        s["role"]: (raws[s["role"]], s["dtype"]) for s in entry["sections"] if s["role"] != "values"
    }
    return layouts.positions(entry["layout"], tuple(entry["shape"]), int(entry["nnz"]), struct)


def _place(vals: np.ndarray, where, n: int) -> np.ndarray:
    if where is None:
        return np.ascontiguousarray(vals)
    out = np.zeros((n, *vals.shape[1:]), dtype=vals.dtype)
    out[where] = vals
    return out


def _check_nnz(entry: dict, found: int) -> None:
    if int(found) != int(entry["nnz"]):
        raise FormatError(
            f"manifest disagrees with its payloads: tensor '{entry['name']}' declares "
            f"nnz={entry['nnz']} but its dense payload holds {int(found)} nonzero elements"
        )


def decode_codes_only(
    entry: dict, smap: SymbolMap | None, raws: dict[str, bytes]
) -> np.ndarray | None:
    """The int8 codes of a validated codes entry whose symbols fit 8 bits, without building
    its float values (what an int8 graph takes): every symbol is checked against the form's
    lookup table (a code no writer produces, or a scale that decodes to inf, is a
    FormatError, as in :func:`decode_entry`) and so is the dense layout's nonzero count.
    None when the codes do not fit int8 (the caller decodes the whole entry)."""
    if entry["encoding"] != "codes" or smap is None or smap.width > 8 or smap.map != "offset":
        return None
    shape = tuple(entry["shape"])
    n = numel(entry["shape"])
    count = value_count(entry)
    if entry["layout"] == "bitmap" and n % 8 and raws["mask"][-1] >> (n % 8):
        raise FormatError(f"tensor '{entry['name']}': bitmap padding bits are not zero")
    low, high = -int(smap.offset), smap.max_symbol - int(smap.offset)  # the valid codes
    if low < -128 or high > 127:
        return None
    table = _lut(entry, smap)  # NaN for a symbol no writer produces
    where = _positions(entry, raws)
    symbols = bitpack.unpack(raws["values"], count, smap.width)
    if not bool(np.isfinite(table)[symbols].all()):
        check_decoded(entry["name"], np.array([np.nan], dtype=np.float32))
    if where is None:
        _check_nnz(entry, np.count_nonzero((table != 0)[symbols]))
    dec = (symbols.astype(np.int16) - np.int16(smap.offset)).astype(np.int8)
    return _place(dec, where, n).reshape(shape)


def decode_entry(
    entry: dict, smap: SymbolMap | None, raws: dict[str, bytes], *, want_codes: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(values in the entry's dtype and shape, integer codes or None) of a validated entry
    (codes as int16 for offset symbols of <= 8 bits, else int64)."""
    shape = tuple(entry["shape"])
    n = numel(entry["shape"])
    count = value_count(entry)
    if entry["layout"] == "bitmap" and n % 8 and raws["mask"][-1] >> (n % 8):
        raise FormatError(f"tensor '{entry['name']}': bitmap padding bits are not zero")
    where = _positions(entry, raws)
    if where is not None and where.dtype == np.bool_:
        where = np.flatnonzero(where)  # a scatter by index is ~3x faster than by mask
    dtype = numpy_dtype(entry["dtype"])
    if entry["encoding"] == "codes":
        assert smap is not None
        symbols = bitpack.unpack(raws["values"], count, smap.width)
        if smap.width <= LUT_MAX_WIDTH:
            vals = _lut(entry, smap)[symbols]
        else:
            wide = smap.decode(symbols)
            check_codes(entry["name"], symbols, wide, smap, entry["kind"], int(entry["bits"]))
            vals = decode_codes(
                wide,
                entry["kind"],
                float(entry["scale"]),
                float(entry["threshold"]),
                int(entry["bits"]),
            )
        out = _place(vals, where, n)
        check_decoded(entry["name"], out)
        if where is None:
            _check_nnz(entry, np.count_nonzero(out.view(np.int32)))
        codes = None
        if want_codes:
            small = smap.width <= 8 and smap.map == "offset"  # codes fit int16 (even int8)
            dec = (
                symbols.astype(np.int16) - np.int16(smap.offset)
                if small
                else smap.decode(symbols).astype(np.int64)
            )
            codes = _place(dec, where, n).reshape(shape)
        return out.reshape(shape).astype(dtype, copy=False), codes
    k = ITEMSIZE[entry["storage_dtype"]]
    shuffled = bool(next(s for s in entry["sections"] if s["role"] == "values").get("shuffle"))
    arr = np.frombuffer(raws["values"], dtype=np.uint8)
    rows = arr.reshape(k, count).T if shuffled else arr.reshape(count, k)
    full = _place(rows, where, n)
    if where is None:
        _check_nnz(entry, np.count_nonzero(full.reshape(-1).view(f"u{k}")))
    stored = full.reshape(-1).view(numpy_dtype(entry["storage_dtype"])).reshape(shape)
    if stored.dtype.kind == "f":
        check_decoded(entry["name"], stored.astype(np.float32, copy=False))
    return stored.astype(dtype, copy=False), None
