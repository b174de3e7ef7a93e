"""One tensor <-> its manifest entry and payload sections (codes or raw values, any layout)."""

from __future__ import annotations

import itertools
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pqcompress.codec import bitpack, entropy, layouts
from pqcompress.codec.entries import (
    check_codes,
    check_decoded,
    invalid_symbols,
    numel,
    value_count,
)
from pqcompress.codec.errors import FormatError
from pqcompress.codec.symbols import SymbolMap, symbol_map
from pqcompress.ops.pq import PQResult, decode

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
LUT_MAX_WIDTH = 18  # decode through a lookup table of 2**width values up to this width
EXHAUSTIVE_BYTES = 1 << 18  # below this raw size, "auto" tries every layout x codec pair
AUTO_TOLERANCE = 0.01  # "auto" codec: a slower decoder must save more than 1% ...
AUTO_SLACK_BYTES = 16  # ... and more than 16 bytes
DECODE_THREADS = min(4, os.cpu_count() or 1)  # threads decoding one large tensor's ranges
RANGE_ELEMENTS = 1 << 20  # elements per decode range (a multiple of 8 * kernels.CHUNK_BYTES)
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
SECTION_OVERHEAD = (
    64  # manifest bytes (after Deflate) one section costs, counted when ranking layouts
)


@dataclass
class Section:
    role: str  # "values", "mask", "indptr", "indices"
    raw: bytes
    dtype: str  # "symbols", "bytes", "bits", or an index dtype such as "uint16"
    shuffle: bool = False
    codec: str = "raw"
    data: bytes = b""

    def meta(self) -> dict:
        out = {"role": self.role, "dtype": self.dtype, "codec": self.codec}
        if self.shuffle:
            out["shuffle"] = True
        return out


@dataclass
class Encoded:
    entry: dict
    sections: list[Section] = field(default_factory=list)


def dtype_name(dtype: torch.dtype) -> str:
    if dtype not in DTYPE_NAMES:
        raise FormatError(f"tensors of dtype {dtype} cannot be stored; supported: {list(DTYPES)}")
    return DTYPE_NAMES[dtype]


def element_bytes(t: torch.Tensor) -> np.ndarray:
    """The tensor's elements as little-endian byte rows, shape (n, itemsize)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().reshape(flat.numel(), flat.element_size())


def encode_tensor(
    name: str,
    tensor: torch.Tensor,
    result: PQResult | None,
    *,
    layout: str = "auto",
    codec: str = "auto",
    float_dtype: str = "float32",
) -> Encoded:
    """Entry (without offsets/checksums) and compressed sections for one state-dict tensor."""
    t = tensor.detach().cpu()
    shape = tuple(int(d) for d in t.shape)
    entry: dict = {"name": name, "shape": list(shape), "dtype": dtype_name(t.dtype)}
    if result is not None and result.codes is not None:
        fields, mask, make, lossy = _code_entry(name, t, result, shape)
    else:
        fields, mask, make, lossy = _value_entry(t, result, float_dtype)
    entry.update(fields)
    entry["lossy"] = bool(lossy)
    entry["nnz"] = int(np.count_nonzero(mask))
    if layout not in ("auto", *layouts.LAYOUTS):
        raise FormatError(
            f"layout={layout!r} is not accepted; use auto, {', '.join(layouts.LAYOUTS)}"
        )
    names = layouts.LAYOUTS if layout == "auto" else (layout,)
    if mask.size == 0:
        names = ("dense",)
    codecs = entropy.auto_candidates() if codec == "auto" else [codec]
    for c in codecs:
        entropy.get_codec(c)
    candidates = {}
    for lay in names:
        order, struct = layouts.split(lay, mask, shape)
        sections = [Section(role, raw, dt) for role, (raw, dt) in struct.items()]
        values, extra = make(order, lay == "dense")
        sections.append(values)
        candidates[lay] = (sections, extra)
    best = _smallest_layout(candidates, codecs)
    sections, extra = candidates[best]
    _compress_all(sections, codecs)
    entry["layout"] = best
    entry.update(extra)
    return Encoded(entry, sections)


def _code_entry(
    name: str, t: torch.Tensor, result: PQResult, shape: tuple[int, ...]
) -> tuple[dict, np.ndarray, Any, bool]:
    """A compressed tensor stored as its integer codes: manifest fields, nonzero mask, the
    section maker; refused unless the codes rebuild the tensor bit for bit."""
    assert result.codes is not None
    codes = result.codes.detach().cpu().reshape(-1).numpy().astype(np.int64)
    back = decode(result.codes, result.kind, result.scale, result.threshold, t.dtype, result.bits)
    if not np.array_equal(element_bytes(back.reshape(shape)), element_bytes(t)):
        raise FormatError(
            f"the compressor's codes for '{name}' do not reproduce the tensor bit for bit; "
            "call compressor.apply() after the last optimizer step before saving"
        )
    fields = {
        "encoding": "codes",
        "kind": result.kind,
        "bits": int(result.bits),
        "scale": float(result.scale),
        "threshold": float(result.threshold),
    }
    return fields, codes != 0, _code_sections(codes, result.kind, int(result.bits)), False


def _value_entry(
    t: torch.Tensor, result: PQResult | None, float_dtype: str
) -> tuple[dict, np.ndarray, Any, bool]:
    """A tensor stored as its element values (float16 when asked: lossy unless exact)."""
    kind = result.kind if result is not None else "none"
    store = t
    lossy = False
    if float_dtype == "float16" and t.dtype == torch.float32:
        half = t.to(torch.float16)
        # a value beyond float16's range (e.g. a BatchNorm running_var > 65504) would be
        # stored as inf, which no reader accepts: such a tensor stays float32, exactly
        if bool(torch.isfinite(half).all()) or not bool(torch.isfinite(t).all()):
            store = half
            lossy = not torch.equal(store.to(torch.float32), t)
    rows = element_bytes(store)
    fields: dict = {"encoding": "values", "kind": kind, "storage_dtype": dtype_name(store.dtype)}
    if result is not None and kind == "prune":
        fields.update(bits=32, threshold=float(result.threshold))
    return fields, rows.any(axis=1), _value_sections(rows), lossy


def _smallest_layout(candidates: dict[str, tuple[list, dict]], codecs: list[str]) -> str:
    """The layout whose sections compress smallest: measured exactly for small tensors,
    estimated with a fast probe for large ones."""
    if len(candidates) == 1:
        return next(iter(candidates))
    total_raw = max(sum(len(s.raw) for s in secs) for secs, _ in candidates.values())
    if total_raw <= EXHAUSTIVE_BYTES:
        return min(
            candidates,
            key=lambda lay: (
                _compress_all(candidates[lay][0], codecs)
                + SECTION_OVERHEAD * len(candidates[lay][0])
            ),
        )
    probe = _probe(codecs)
    return min(
        candidates,
        key=lambda lay: sum(probe(s.raw) + SECTION_OVERHEAD for s in candidates[lay][0]),
    )


def _probe(codecs: list[str]):
    """A fast size estimate used to rank layouts of large tensors."""
    if len(codecs) == 1 and codecs[0] in ("raw", "deflate"):
        c = entropy.get_codec(codecs[0])
        return lambda raw: len(c.compress(raw))
    if "zstd" in codecs:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=3)
        return lambda raw: len(cctx.compress(raw))
    return lambda raw: len(zlib.compress(raw, 1))


def _compress_all(sections: list[Section], codecs: list[str]) -> int:
    """Compress each section with every codec; keep the fastest-to-decode codec whose
    output is within ``AUTO_TOLERANCE`` of the smallest. Returns the total size."""
    total = 0
    for s in sections:
        outs = {name: entropy.get_codec(name).compress(s.raw) for name in codecs}
        smallest = min(len(d) for d in outs.values())
        limit = smallest + max(AUTO_SLACK_BYTES, AUTO_TOLERANCE * smallest)
        ranked = sorted(outs, key=lambda c: entropy.DECODE_SPEED_ORDER.index(c))
        s.codec = next(c for c in ranked if len(outs[c]) <= limit)
        s.data = outs[s.codec]
        total += len(s.data)
    return total


def _code_sections(codes: np.ndarray, kind: str, bits: int):
    def make(order: np.ndarray | None, dense: bool):
        smap = symbol_map(kind, bits, codes, dense)
        chosen = codes if order is None else codes[order]
        symbols = smap.encode(chosen)
        raw = bitpack.pack(symbols, smap.width)
        return Section("values", raw, "symbols"), {"symbols": smap.to_json()}

    return make


def _value_sections(rows: np.ndarray):
    def make(order: np.ndarray | None, dense: bool):
        chosen = rows if order is None else rows[order]
        shuffle = chosen.shape[1] > 1
        raw = np.ascontiguousarray(chosen.T).tobytes() if shuffle else chosen.tobytes()
        return Section("values", raw, "bytes", shuffle=shuffle), {}

    return make


# ----------------------------------------------------------------------------- decoding


def decode_tensor(entry: dict, smap: SymbolMap | None, raws: dict[str, bytes]) -> torch.Tensor:
    """The tensor of a validated entry from its inflated sections (numba kernels, ranges on
    GIL-free threads; numba is imported on first use, as it costs a quarter of a second)."""
    shape = tuple(entry["shape"])
    n = numel(entry["shape"])
    dtype = DTYPES[entry["dtype"]]
    bitmap = _bitmap(entry, raws, n) if entry["layout"] == "bitmap" else None
    if entry["encoding"] == "codes":
        assert smap is not None
        out = _decode_codes(entry, smap, raws, n, bitmap)
        if entry["layout"] == "dense":
            _check_nnz(entry, int(np.count_nonzero(out.view(np.int32))))
        check_decoded(entry["name"], out)
        return torch.from_numpy(out).reshape(shape).to(dtype)
    t = _decode_values(entry, raws, n, bitmap).reshape(shape)
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        raise FormatError(f"tensor '{entry['name']}' holds NaN or inf values (corrupt file?)")
    return t.to(dtype)


def _bitmap(entry: dict, raws: dict[str, bytes], n: int) -> tuple[np.ndarray, ...]:
    """(mask bytes, the same as 64-bit words, prefix counts per chunk) of a bitmap entry,
    checked: padding bits zero, as many set bits as ``nnz``."""
    from pqcompress.codec import kernels

    bitmap = np.frombuffer(raws["mask"], dtype=np.uint8)
    words = bitmap[: bitmap.size - bitmap.size % 8].view("<u8")  # 64 mask bits a time
    if n % 8 and bitmap[-1] >> (n % 8):
        raise FormatError(f"tensor '{entry['name']}': bitmap padding bits are not zero")
    counts = kernels.bitmap_prefix(bitmap, words)
    if int(counts[-1]) != int(entry["nnz"]):
        raise FormatError(
            f"tensor '{entry['name']}': bitmap marks {int(counts[-1])} elements, "
            f"nnz={int(entry['nnz'])}"
        )
    return bitmap, words, counts


def _decode_codes(
    entry: dict,
    smap: SymbolMap,
    raws: dict[str, bytes],
    n: int,
    bitmap: tuple[np.ndarray, ...] | None,
) -> np.ndarray:
    """float32 values of a code entry: a lookup table straight from the packed bits (dense
    and bitmap layouts, narrow codes), else unpack, map and place."""
    from pqcompress.codec import kernels

    layout = entry["layout"]
    raw = raws["values"]
    if not (smap.width <= LUT_MAX_WIDTH and layout in ("dense", "bitmap")):
        vals = _decode_symbols(entry, smap, bitpack.unpack(raw, value_count(entry), smap.width))
        return _place(entry, vals, n, raws)
    lut = _lut(entry, smap)
    packed = np.frombuffer(raw + bytes(8), dtype=np.uint8)  # padded for 5-byte reads
    width = smap.width
    if layout == "dense":
        out = np.empty(n, dtype=np.float32)
        _run_ranges(
            [
                (kernels.dense_lut_range, (packed, a, min(a + RANGE_ELEMENTS, n), width, lut, out))
                for a in range(0, n, RANGE_ELEMENTS)
            ]
        )
        return out
    assert bitmap is not None
    mask, words, counts = bitmap
    out = np.zeros(n, dtype=np.float32)  # +0.0: what a clear mask bit decodes to
    step = RANGE_ELEMENTS // (8 * kernels.CHUNK_BYTES)  # prefix chunks per range
    chunk = kernels.CHUNK_BYTES
    tasks = []
    for c in range(0, max(counts.size - 1, 1), step):
        window = (c * chunk, min((c + step) * chunk, mask.size), int(counts[c]))
        args = (mask, words, *window, n, packed, width, lut, out)
        tasks.append((kernels.bitmap_lut_range, args))
    _run_ranges(tasks)
    return out


def _decode_values(
    entry: dict, raws: dict[str, bytes], n: int, bitmap: tuple[np.ndarray, ...] | None
) -> torch.Tensor:
    """The flat tensor of a value entry in its storage dtype (byte-shuffled or not)."""
    from pqcompress.codec import kernels

    layout = entry["layout"]
    count = value_count(entry)
    storage = DTYPES[entry["storage_dtype"]]
    k = torch.empty((), dtype=storage).element_size()
    shuffled = bool(next(s for s in entry["sections"] if s["role"] == "values").get("shuffle"))
    arr = np.frombuffer(raws["values"], dtype=np.uint8)
    if bitmap is not None and shuffled:
        mask, _, counts = bitmap
        full = np.empty((n, k), dtype=np.uint8)
        kernels.bitmap_rows(mask, counts, n, arr, count, k, full)
    else:
        rows = arr.reshape(k, count).T if shuffled else arr.reshape(count, k)
        full = _place(entry, rows, n, raws) if layout != "dense" else np.array(rows, order="C")
    if layout == "dense":
        _check_nnz(entry, int(np.count_nonzero(full.reshape(-1).view(f"u{k}"))))
    return torch.from_numpy(full.reshape(-1)).view(storage)


def _run_ranges(tasks: list) -> None:
    """Run ``(kernel, args)`` tasks (GIL-free numba kernels writing disjoint output ranges) on
    up to DECODE_THREADS threads; the caller's thread works too, and every thread pulls the
    next task from the shared list, so a descheduled thread holds up one range at most."""
    global _POOL, _POOL_PID
    if len(tasks) <= 1 or DECODE_THREADS <= 1:
        for fn, args in tasks:
            fn(*args)
        return
    if _POOL is None or os.getpid() != _POOL_PID:  # a forked child has no pool threads
        _POOL = ThreadPoolExecutor(DECODE_THREADS - 1, thread_name_prefix="pqz-decode")
        _POOL_PID = os.getpid()
    counter = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        while (i := next(counter)) < len(tasks):
            fn, args = tasks[i]
            fn(*args)

    helpers = [_POOL.submit(work) for _ in range(min(DECODE_THREADS - 1, len(tasks) - 1))]
    work()
    for h in helpers:
        h.result()


def _check_nnz(entry: dict, found: int) -> None:
    if int(found) != int(entry["nnz"]):
        raise FormatError(
            f"manifest disagrees with its payloads: tensor '{entry['name']}' declares "
            f"nnz={entry['nnz']} but its dense payload holds {int(found)} nonzero elements"
        )


def _place(entry: dict, vals: np.ndarray, n: int, raws: dict[str, bytes]) -> np.ndarray:
    """Scatter the stored elements (numpy path: CSR/CSC and wide symbols)."""
    where = _positions(entry, raws)
    if where is None:
        return np.array(vals, order="C")
    out = np.zeros((n, *vals.shape[1:]), dtype=vals.dtype)
    out[where] = vals
    return out


def _positions(entry: dict, raws: dict[str, bytes]):
    struct = {
        s["role"]: (raws[s["role"]], s["dtype"]) for s in entry["sections"] if s["role"] != "values"
    }
    return layouts.positions(entry["layout"], tuple(entry["shape"]), int(entry["nnz"]), struct)


def _lut(entry: dict, smap: SymbolMap) -> np.ndarray:
    """Float32 value of every possible symbol, computed by ``pq.decode`` (so the table is the
    decode formula itself, evaluated once per symbol)."""
    table_codes = smap.decode(np.arange(1 << smap.width, dtype=np.int64))
    invalid = invalid_symbols(table_codes, smap, entry["kind"], int(entry["bits"]))
    table_codes = np.clip(table_codes, -(2**31), 2**31 - 1).astype(np.int32)
    kind, bits = entry["kind"], int(entry["bits"])
    scale, threshold = float(entry["scale"]), float(entry["threshold"])
    table = decode(torch.from_numpy(table_codes), kind, scale, threshold, bits=bits).numpy()
    table[invalid] = np.nan  # a symbol no writer produces: caught by the finiteness check
    return table


def _decode_symbols(entry: dict, smap: SymbolMap, symbols: np.ndarray) -> np.ndarray:
    if smap.width <= LUT_MAX_WIDTH:
        return _lut(entry, smap)[symbols]
    kind, bits = entry["kind"], int(entry["bits"])
    scale, threshold = float(entry["scale"]), float(entry["threshold"])
    raw_codes = smap.decode(symbols)
    check_codes(entry["name"], symbols, raw_codes, smap, kind, bits)
    codes = torch.from_numpy(raw_codes.astype(np.int32))
    return decode(codes, kind, scale, threshold, bits=bits).numpy()


def codes_of(entry: dict, smap: SymbolMap, raws: dict[str, bytes]) -> np.ndarray:
    """Dense int64 codes of a code entry (for statistics and baselines)."""
    codes = smap.decode(bitpack.unpack(raws["values"], value_count(entry), smap.width))
    where = _positions(entry, raws)
    if where is None:
        return codes
    out = np.zeros(numel(entry["shape"]), dtype=np.int64)
    out[where] = codes
    return out
