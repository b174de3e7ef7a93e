"""Numba kernels for the hot decode paths: bit-unpacking fused with the lookup-table decode
and the bitmap scatter, one pass over the output.

Serial on purpose: measured on a 2-core machine under load, numba's parallel regions made
loading VGG16 7x slower (every region waits for its slowest, descheduled thread), while a
serial pass costs about 3 ns per element. Loading still overlaps hashing and inflation
(worker threads) with these kernels."""

from __future__ import annotations

import numba as nb
import numpy as np

CHUNK_BYTES = 8192  # mask bytes per chunk of the prefix counts (65,536 elements)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


@nb.njit(cache=True, inline="always")
def _symbol(packed, j, width, mask):
    """Symbol ``j`` of a little-endian bit stream (``packed`` padded with 8 zero bytes)."""
    bit = j * width
    b = bit >> 3
    word = np.uint64(0)
    for k in range(5):  # width <= 32 plus a 7-bit offset fits 40 bits
        word |= np.uint64(packed[b + k]) << np.uint64(8 * k)
    return (word >> np.uint64(bit & 7)) & mask


@nb.njit(cache=True)
def dense_lut(packed, count, width, lut, out):
    """out[i] = lut[symbol i] for i < count."""
    mask = np.uint64((1 << width) - 1)
    chunks = (count + 65535) // 65536
    for c in range(chunks):
        start = c * 65536
        stop = min(start + 65536, count)
        for i in range(start, stop):
            out[i] = lut[_symbol(packed, i, width, mask)]


@nb.njit(cache=True)
def bitmap_prefix(bitmap):
    """Set bits before each chunk of CHUNK_BYTES mask bytes (length chunks + 1; the last
    entry is the total). Callers check the total against nnz before any fill."""
    nbytes = bitmap.size
    chunks = (nbytes + CHUNK_BYTES - 1) // CHUNK_BYTES
    counts = np.zeros(chunks + 1, dtype=np.int64)
    for c in range(chunks):
        s = 0
        for b in range(c * CHUNK_BYTES, min((c + 1) * CHUNK_BYTES, nbytes)):
            s += _POPCOUNT[bitmap[b]]
        counts[c + 1] = s
    for c in range(chunks):
        counts[c + 1] += counts[c]
    return counts


@nb.njit(cache=True)
def bitmap_lut(bitmap, counts, n, packed, width, lut, out):
    """out[i] = lut[next stored symbol] where mask bit i is set, else 0.

    ``lut`` has one extra last entry holding 0, selected branch-free by a clear bit; mask
    bytes that are all clear or all set take a fast path.
    """
    mask = np.uint64((1 << width) - 1)
    zero_index = lut.size - 1
    zero = lut[zero_index]
    j = 0
    full = n // 8
    for b in range(full):
        x = bitmap[b]
        base = b * 8
        if x == 0:
            for k in range(8):
                out[base + k] = zero
        elif x == 255:
            for k in range(8):
                if width == 8:
                    out[base + k] = lut[packed[j + k]]
                else:
                    out[base + k] = lut[_symbol(packed, j + k, width, mask)]
            j += 8
        else:
            for k in range(8):
                bit = (x >> k) & 1
                if width == 8:
                    sym = np.int64(packed[j])
                else:
                    sym = np.int64(_symbol(packed, j, width, mask))
                out[base + k] = lut[bit * sym + (1 - bit) * zero_index]
                j += bit
    for i in range(full * 8, n):
        bit = (bitmap[i >> 3] >> (i & 7)) & 1
        sym = np.int64(_symbol(packed, j, width, mask))
        out[i] = lut[bit * sym + (1 - bit) * zero_index]
        j += bit


@nb.njit(cache=True)
def bitmap_rows(bitmap, counts, n, planes, count, k, out):
    """Scatter byte-shuffled rows: element j's byte p is ``planes[p * count + j]``;
    out is (n, k) uint8, zero where the mask bit is clear."""
    chunks = counts.size - 1
    for c in range(chunks):
        j = counts[c]
        start = c * CHUNK_BYTES * 8
        stop = min(start + CHUNK_BYTES * 8, n)
        for i in range(start, stop):
            if (bitmap[i >> 3] >> (i & 7)) & 1:
                for p in range(k):
                    out[i, p] = planes[p * count + j]
                j += 1
            else:
                for p in range(k):
                    out[i, p] = 0
