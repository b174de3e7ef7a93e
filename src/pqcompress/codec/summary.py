"""``inspect`` rows and totals, the studies' baseline (dense int8 + Deflate), entropy bound."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pqcompress.codec.entries import numel
from pqcompress.codec.portable import unshrunk_bytes
from pqcompress.codec.reader import DEFAULT_MAX_DECODED_BYTES, sections
from pqcompress.codec.tensorcode import DTYPES, codes_of, decode_tensor, element_bytes

BASELINE_DEFLATE_LEVEL = 9


def code_bytes(codes: np.ndarray) -> bytes:
    """Codes as the narrowest signed integers that hold them (int8 for 8-bit codes; exact
    8-bit codes reach ±128 and are clipped to int8: a size baseline, not a format)."""
    top = int(np.abs(codes).max()) if codes.size else 0
    dt = np.int8 if top <= 128 else np.int16 if top <= 32768 else np.int32
    info = np.iinfo(dt)
    out: bytes = np.clip(codes, info.min, info.max).astype(dt).tobytes()
    return out


def studies_baseline_bytes(blobs: Iterable[bytes]) -> int:
    """The studies' approach: every tensor dense (codes as int8, others float32), one Deflate."""
    z = zlib.compressobj(BASELINE_DEFLATE_LEVEL)
    size = 0
    for blob in blobs:
        size += len(z.compress(blob))
    return size + len(z.flush())


def entropy_bits(symbols: np.ndarray) -> float:
    """Order-0 entropy (bits) of a sequence of integer symbols: n * H(empirical distribution)."""
    n = symbols.size
    if n == 0:
        return 0.0
    s = symbols.astype(np.int64, copy=False)
    lo = int(s.min())
    span = int(s.max()) - lo + 1
    if span <= (1 << 22):
        counts = np.bincount(s - lo)
        counts = counts[counts > 0]
    else:
        _, counts = np.unique(s, return_counts=True)
    p = counts / n
    return float(-(counts * np.log2(p)).sum())


def tensor_symbols(t: torch.Tensor) -> np.ndarray:
    """Raw values as integers of their bit patterns (the symbols of an uncompressed tensor)."""
    rows = element_bytes(t)
    k = rows.shape[1]
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.int64}[k]
    return np.ascontiguousarray(rows).view(view).reshape(-1)


def inspect(
    path: str | Path,
    *,
    baseline: bool = True,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> dict[str, Any]:
    """``{"tensors": [row, ...], "totals": {...}}`` of a .pqz file.

    Each row: name, shape, dtype, kind, bits, numel, nnz, sparsity, layout, codec (per
    section ``role:codec``), stored_bytes. Totals: file bytes, parameters, float32 dense
    bytes and the ratio to it; with ``baseline`` (decodes the file) also the studies'
    "dense int8 + Deflate" bytes, the order-0 entropy bound of the stored symbols, and the
    ratios to both.
    """
    manifest, items = sections(path, max_decoded_bytes)
    rows, blobs, bound_bits = [], [], 0.0
    for entry, smap, raws in items if baseline else ((e, None, None) for e in manifest["tensors"]):
        n = numel(entry["shape"])
        stored = sum(s["length"] for s in entry["sections"])
        rows.append(
            {
                "name": entry["name"],
                "shape": tuple(entry["shape"]),
                "dtype": entry["dtype"],
                "kind": entry["kind"],
                "bits": entry.get("bits"),
                "numel": n,
                "nnz": entry["nnz"],
                "sparsity": 1.0 - entry["nnz"] / n if n else 0.0,
                "layout": entry["layout"],
                "codec": ",".join(f"{s['role']}:{s['codec']}" for s in entry["sections"]),
                "stored_bytes": stored,
            }
        )
        if baseline:
            assert raws is not None
            if entry["encoding"] == "codes":
                assert smap is not None
                codes = codes_of(entry, smap, raws)
                blobs.append(code_bytes(codes))
                bound_bits += entropy_bits(codes)
            else:
                t = decode_tensor(entry, None, raws)
                if t.is_floating_point():
                    t = t.to(torch.float32)
                blobs.append(element_bytes(t).tobytes())
                bound_bits += entropy_bits(tensor_symbols(t))
    file_bytes = Path(path).stat().st_size
    float32 = sum(
        r["numel"] * (4 if DTYPES[r["dtype"]].is_floating_point else _itemsize(r["dtype"]))
        for r in rows
    )
    totals: dict[str, Any] = {
        "file_bytes": file_bytes,
        "payload_bytes": manifest["payload_bytes"],
        "tensors": len(rows),
        "params": sum(r["numel"] for r in rows),
        "nnz": sum(r["nnz"] for r in rows),
        "float32_bytes": float32,
        "ratio_float32": float32 / file_bytes if file_bytes else math.nan,
        # a shrunk model: the float32 dense bytes of the model before its channels were removed
        "unshrunk_float32_bytes": unshrunk_bytes(manifest),
        "lossy": manifest.get("lossy", False),
        "graphs": {g["name"]: g["length"] for g in manifest.get("graphs") or []},
    }
    if baseline:
        base = studies_baseline_bytes(blobs)
        totals.update(
            studies_bytes=base,
            ratio_studies=base / file_bytes if file_bytes else math.nan,
            entropy_bound_bytes=bound_bits / 8,
            ratio_to_bound=file_bytes / (bound_bits / 8) if bound_bits else math.nan,
        )
    return {"model": manifest.get("model"), "tensors": rows, "totals": totals}


def _itemsize(name: str) -> int:
    return torch.empty((), dtype=DTYPES[name]).element_size()
