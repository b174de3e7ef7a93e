"""Little-endian bit packing of unsigned symbols of a fixed width (1..32 bits), vectorized.

Symbol ``i`` occupies stream bits ``[i*w, (i+1)*w)``; stream bit ``k`` is bit ``k % 8``
(least significant first) of byte ``k // 8``; within a symbol the least significant bit
comes first. The last byte is padded with zero bits. Widths 8, 16 and 32 are plain
little-endian integer arrays. Work is done eight symbols (``w`` bytes) at a time with
numpy shifts on uint64 words, never a Python loop per element.
"""

from __future__ import annotations

import numpy as np

MAX_WIDTH = 32


def packed_size(count: int, width: int) -> int:
    """Bytes holding ``count`` symbols of ``width`` bits."""
    return (count * width + 7) // 8


def _check_width(width: int) -> None:
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"bit width {width} is outside 1..{MAX_WIDTH}")


def pack(symbols: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers (< 2**width) into a little-endian bit stream."""
    _check_width(width)
    sym = np.ascontiguousarray(symbols).reshape(-1)
    n = sym.size
    if width in (8, 16, 32):
        return sym.astype(f"<u{width // 8}", copy=False).tobytes()
    groups = -(-n // 8)
    padded = np.zeros(groups * 8, dtype=np.uint64)
    padded[:n] = sym
    s = padded.reshape(groups, 8)
    words = -(-width // 8)  # uint64 words per group of 8 symbols (8*width bits)
    acc = np.zeros((groups, words), dtype=np.uint64)
    for k in range(8):
        shift = k * width
        j, off = divmod(shift, 64)
        col = s[:, k]
        acc[:, j] |= col << np.uint64(off)
        if off + width > 64:
            acc[:, j + 1] |= col >> np.uint64(64 - off)
    stream = acc.astype("<u8", copy=False).view(np.uint8).reshape(groups, words * 8)[:, :width]
    return stream.tobytes()[: packed_size(n, width)]


def unpack(data: bytes | memoryview | np.ndarray, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` symbols as uint8/uint16/uint32 (smallest that fits)."""
    _check_width(width)
    out_dtype = np.uint8 if width <= 8 else np.uint16 if width <= 16 else np.uint32
    raw = np.frombuffer(data, dtype=np.uint8)
    need = packed_size(count, width)
    if raw.size != need:
        raise ValueError(f"{raw.size} bytes cannot hold exactly {count} {width}-bit symbols")
    if width in (8, 16, 32):
        return raw.view(f"<u{width // 8}").astype(out_dtype, copy=False)
    groups = -(-count // 8)
    words = -(-width // 8)
    buf = np.zeros((groups, words * 8), dtype=np.uint8)
    body = np.zeros(groups * width, dtype=np.uint8)
    body[:need] = raw
    buf[:, :width] = body.reshape(groups, width)
    acc = buf.view("<u8").astype(np.uint64, copy=False)
    mask = np.uint64((1 << width) - 1)
    out = np.empty((groups, 8), dtype=out_dtype)
    for k in range(8):
        shift = k * width
        j, off = divmod(shift, 64)
        col = acc[:, j] >> np.uint64(off)
        if off + width > 64:
            col = col | (acc[:, j + 1] << np.uint64(64 - off))
        out[:, k] = col & mask
    return out.reshape(-1)[:count]
