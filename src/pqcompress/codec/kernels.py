"""Numba kernels for the hot decode paths: bit-unpacking fused with the lookup-table decode
and the bitmap scatter, one pass over the output.

Each kernel decodes one range of the output and releases the GIL (``nogil=True``): the
reader splits large tensors into ranges that a few threads pull from a shared list
(``tensorcode._run_ranges``), so a descheduled thread delays only its current range. (Numba's
``parallel=True`` made loading VGG16 7x slower on a loaded 2-core machine: each parallel
region waits for its slowest, statically assigned thread.)"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

CHUNK_BYTES = 8192  # mask bytes per chunk of the prefix counts (65,536 elements)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_CTZ = np.array([(x & -x).bit_length() - 1 if x else 8 for x in range(256)], dtype=np.int64)


@nb.njit(cache=True, inline="always")
def _symbol(packed, j, width, mask):
    """Symbol ``j`` of a little-endian bit stream (``packed`` padded with 8 zero bytes)."""
    bit = j * width
    b = bit >> 3
    word = np.uint64(0)
    for k in range(5):  # width <= 32 plus a 7-bit offset fits 40 bits
        word |= np.uint64(packed[b + k]) << np.uint64(8 * k)
    return (word >> np.uint64(bit & 7)) & mask


@nb.njit(cache=True, nogil=True)
def dense_lut_range(packed, start, stop, width, lut, out):
    """out[i] = lut[symbol i] for start <= i < stop."""
    if width == 8:
        for i in range(start, stop):
            out[i] = lut[packed[i]]
        return
    mask = np.uint64((1 << width) - 1)
    for i in range(start, stop):
        out[i] = lut[_symbol(packed, i, width, mask)]


@intrinsic
def _cttz(typingctx, x):
    """Trailing zero bits of a nonzero uint64 (one ``tzcnt``/``bsf`` instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def bitmap_lut_range(bitmap, words, start, stop, j, n, packed, width, lut, out):
    """Mask bytes ``start..stop`` (``start`` a multiple of 8; elements ``8*start`` up to
    ``n``): out[i] = lut[next stored symbol] where mask bit i is set. ``out`` must be
    zero-filled (+0.0, what a clear bit decodes to; ``np.zeros`` of a large array costs no
    more than ``np.empty``), so only set bits are visited: 64 mask bits at a time
    (``words``, the mask as little-endian uint64), lowest set bit first (``tzcnt``, then
    ``x &= x - 1``); all-set words take a straight loop. ``j`` is the index of the first
    stored symbol of byte ``start`` (from ``bitmap_prefix``). About 0.3 ns per element at
    20% density (measured, one thread), 3.6x less than a loop over mask bytes."""
    mask = np.uint64((1 << width) - 1)
    one = np.uint64(1)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    w_stop = min(stop >> 3, n >> 6)  # words wholly inside the tensor
    for w in range(start >> 3, w_stop):
        x = words[w]
        base = w * 64
        if x == full:
            for k in range(64):
                if width == 8:
                    out[base + k] = lut[packed[j + k]]
                else:
                    out[base + k] = lut[_symbol(packed, j + k, width, mask)]
            j += 64
            continue
        while x:
            k = _cttz(x)
            if width == 8:
                out[base + k] = lut[packed[j]]
            else:
                out[base + k] = lut[_symbol(packed, j, width, mask)]
            j += 1
            x &= x - one
    last = n >> 3  # the last, partial byte (if n % 8)
    for b in range(max(w_stop * 8, start), min(stop, (n + 7) >> 3)):
        xb = np.int64(bitmap[b])
        if b == last:
            xb &= (1 << (n & 7)) - 1  # padding bits of the last byte are ignored
        base = b * 8
        while xb:
            k = _CTZ[xb]
            if width == 8:
                out[base + k] = lut[packed[j]]
            else:
                out[base + k] = lut[_symbol(packed, j, width, mask)]
            j += 1
            xb &= xb - 1


@intrinsic
def _ctpop(typingctx, x):
    """Set bits of a uint64 (one ``popcnt`` instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def bitmap_prefix(bitmap, words):
    """Set bits before each chunk of CHUNK_BYTES mask bytes (length chunks + 1; the last
    entry is the total), counted 64 bits at a time (``words``: the mask's whole uint64
    words). Callers check the total against nnz before any fill."""
    nbytes = bitmap.size
    chunks = (nbytes + CHUNK_BYTES - 1) // CHUNK_BYTES
    counts = np.zeros(chunks + 1, dtype=np.int64)
    for c in range(chunks):
        s = 0
        b0 = c * CHUNK_BYTES
        b1 = min(b0 + CHUNK_BYTES, nbytes)
        w1 = min(b1 >> 3, words.size)
        for w in range(b0 >> 3, w1):
            s += np.int64(_ctpop(words[w]))
        for b in range(max(w1 * 8, b0), b1):
            s += _POPCOUNT[bitmap[b]]
        counts[c + 1] = s
    for c in range(chunks):
        counts[c + 1] += counts[c]
    return counts


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
