"""Fused CPU kernels (numba): one read pass for statistics, one read-write pass to compress.

The element arithmetic mirrors :func:`pqcompress.ops.pq.encode` followed by ``decode``
operation for operation (same float32 steps), and parameters come from the same
``compute_params``, so values are bit-identical to the torch reference for every
deterministic rounding. Statistics are reduced per fixed-size chunk (float64 accumulators)
and merged serially, so they do not depend on the number of threads. Chunks are sliced
before the inner loops so LLVM vectorizes them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from pqcompress.ops.pq import PRUNE, compute_params

CHUNK = 16384
_params = nb.njit(cache=True)(compute_params)


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _stats_of(q):
    """(sum, sum of squares, max |x|) of one chunk: float64 sums, each loop vectorized."""
    a = 0.0
    for i in range(q.size):
        a += q[i]
    b = 0.0
    for i in range(q.size):
        b += np.float64(q[i]) * q[i]
    m = np.float32(0.0)
    for i in range(q.size):
        x = abs(q[i])
        m = x if x > m else m
    return a, b, m


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _stats_of_sum(q, r):
    """``_stats_of(q + r)`` without materialising the sum (no temporary per chunk)."""
    a = 0.0
    for i in range(q.size):
        a += q[i] + r[i]
    b = 0.0
    for i in range(q.size):
        w = q[i] + r[i]
        b += np.float64(w) * w
    m = np.float32(0.0)
    for i in range(q.size):
        x = abs(q[i] + r[i])
        m = x if x > m else m
    return a, b, m


@nb.njit(cache=True, parallel=True, fastmath={"reassoc", "nsz"})
def _chunk_stats(p, r, use_r, s1, s2, mx):
    n = p.size
    for c in nb.prange(s1.size):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        if use_r:
            s1[c], s2[c], mx[c] = _stats_of_sum(q, r[lo:hi])
        else:
            s1[c], s2[c], mx[c] = _stats_of(q)


@nb.njit(cache=True)
def _merge(n, s1, s2, mx):
    """Chan's merge of per-chunk (sum, sum of squares) in a fixed order -> (std, maxabs, finite)."""
    count = 0.0
    mean = 0.0
    m2 = 0.0
    finite = True
    amax = np.float32(0.0)
    for c in range(s1.size):
        k = float(min(CHUNK, n - c * CHUNK))
        cm = s1[c] / k
        cm2 = max(s2[c] - s1[c] * cm, 0.0)
        delta = cm - mean
        tot = count + k
        mean += delta * k / tot
        m2 += cm2 + delta * delta * count * k / tot
        count = tot
        if not (mx[c] <= np.float32(3.4028235e38)):  # NaN or inf
            finite = False
        elif mx[c] > amax:
            amax = mx[c]
    if not (math.isfinite(mean) and math.isfinite(m2)):
        finite = False
    std = math.sqrt(m2 / count) if count > 1 else 0.0
    return std, amax, finite


@nb.njit(cache=True, inline="always")
def _uniform01(seed, i):
    """Counter-based U[0,1) (splitmix64 of seed and element index): parallel and reproducible."""
    z = seed + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float32(z >> np.uint64(40)) * np.float32(1.0 / 16777216.0)


@nb.njit(cache=True, inline="always")
def _grid(w, beta, off, scale, top, e_pos, e_neg, d):
    a = abs(w)
    e = e_neg if w < 0 else e_pos
    u = (a - off) / scale
    m = e * np.floor(e * u + d)
    m = min(max(m, np.float32(0.0)), top)
    mag = off + scale * m
    return np.copysign(mag, w) if (a >= beta) & (mag != 0) else np.float32(0.0)


@nb.njit(cache=True, parallel=True, fastmath={"nsz"})
def _compress(p, r, use_r, stochastic, beta, off, scale, top, e_pos, e_neg, d, seed):
    n = p.size
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        if use_r:
            rr = r[lo:hi]
            for i in range(q.size):
                w = q[i] + rr[i]
                dd = _uniform01(seed, lo + i) if stochastic else d
                v = _grid(w, beta, off, scale, top, e_pos, e_neg, dd)
                q[i] = v
                rr[i] = w - v
        elif stochastic:
            for i in range(q.size):
                q[i] = _grid(q[i], beta, off, scale, top, e_pos, e_neg, _uniform01(seed, lo + i))
        else:
            for i in range(q.size):
                q[i] = _grid(q[i], beta, off, scale, top, e_pos, e_neg, d)


@nb.njit(cache=True, parallel=True)
def _prune(p, r, use_r, beta):
    n = p.size
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        if use_r:
            rr = r[lo:hi]
            for i in range(q.size):
                w = q[i] + rr[i]
                v = w if abs(w) >= beta else np.float32(0.0)
                q[i] = v
                rr[i] = w - v
        else:
            for i in range(q.size):
                w = q[i]
                q[i] = w if abs(w) >= beta else np.float32(0.0)


@nb.njit(cache=True, parallel=True, fastmath={"reassoc", "nsz"})
def _sgd_chunk_stats(p, r, use_r, g, buf, first, lr, mom, damp, wd, nesterov, s1, s2, mx):
    """torch.optim.SGD's update of ``p`` (and ``buf``), chunk by chunk, followed at once by the
    compressor's statistics of the chunk while it is in cache (as ``_chunk_stats``).

    The update is element by element in float32 (reassociation cannot apply: each element is
    one chain of dependent operations): ``d = g + wd * p``; ``buf = d`` on the first step, else
    ``mom * buf + (1 - damp) * d``; ``d = d + mom * buf`` (Nesterov) or ``buf``;
    ``p = p - lr * d``.
    """
    n = p.size
    one = np.float32(1.0)
    for c in nb.prange(s1.size):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        gg = g[lo:hi]
        bb = buf[lo:hi]
        # loop-invariant cases outside the loops, so each inner loop vectorizes
        if mom == 0:
            for i in range(q.size):
                q[i] = q[i] - lr * (gg[i] + wd * q[i])
        elif first and nesterov:
            for i in range(q.size):
                d = gg[i] + wd * q[i]
                bb[i] = d
                q[i] = q[i] - lr * (d + mom * d)
        elif first:
            for i in range(q.size):
                d = gg[i] + wd * q[i]
                bb[i] = d
                q[i] = q[i] - lr * d
        elif nesterov:
            for i in range(q.size):
                d = gg[i] + wd * q[i]
                b = mom * bb[i] + (one - damp) * d
                bb[i] = b
                q[i] = q[i] - lr * (d + mom * b)
        else:
            for i in range(q.size):
                d = gg[i] + wd * q[i]
                b = mom * bb[i] + (one - damp) * d
                bb[i] = b
                q[i] = q[i] - lr * b
        if use_r:
            s1[c], s2[c], mx[c] = _stats_of_sum(q, r[lo:hi])
        else:
            s1[c], s2[c], mx[c] = _stats_of(q)


@nb.njit(cache=True)
def sgd_compress_flat(
    p,
    r,
    use_r,
    g,
    buf,
    first,
    lr,
    mom,
    damp,
    wd,
    nesterov,
    kind,
    alpha,
    bits,
    e_pos,
    e_neg,
    d,
    stochastic,
    offset_is_beta,
    top,
    seed,
):
    """One SGD step of ``p`` fused with its P->Q application (``compress_flat``): the update
    and the statistics share one pass, so the weights, gradient and momentum are read once
    for the optimizer and the statistics, and once more to compress. Same returns as
    ``compress_flat``; when not finite, ``p`` holds the updated, uncompressed weights."""
    n = p.size
    nch = (n + CHUNK - 1) // CHUNK
    s1 = np.empty(nch, np.float64)
    s2 = np.empty(nch, np.float64)
    mx = np.empty(nch, np.float32)
    _sgd_chunk_stats(
        p,
        r,
        use_r,
        g,
        buf,
        first,
        np.float32(lr),
        np.float32(mom),
        np.float32(damp),
        np.float32(wd),
        nesterov,
        s1,
        s2,
        mx,
    )
    return _finish(
        p,
        r,
        use_r,
        n,
        s1,
        s2,
        mx,
        kind,
        alpha,
        bits,
        e_pos,
        e_neg,
        d,
        stochastic,
        offset_is_beta,
        top,
        seed,
    )


@nb.njit(cache=True)
def compress_flat(
    p, r, use_r, kind, alpha, bits, e_pos, e_neg, d, stochastic, offset_is_beta, top, seed
):
    """Compress float32 vector ``p`` in place; latent: ``w = p + r`` and ``r <- w - C(w)``.

    Returns (beta, scale, std, maxabs, finite). Nothing is written when not finite.
    """
    n = p.size
    nch = (n + CHUNK - 1) // CHUNK
    s1 = np.empty(nch, np.float64)
    s2 = np.empty(nch, np.float64)
    mx = np.empty(nch, np.float32)
    _chunk_stats(p, r, use_r, s1, s2, mx)
    return _finish(
        p,
        r,
        use_r,
        n,
        s1,
        s2,
        mx,
        kind,
        alpha,
        bits,
        e_pos,
        e_neg,
        d,
        stochastic,
        offset_is_beta,
        top,
        seed,
    )


@nb.njit(cache=True)
def _finish(
    p,
    r,
    use_r,
    n,
    s1,
    s2,
    mx,
    kind,
    alpha,
    bits,
    e_pos,
    e_neg,
    d,
    stochastic,
    offset_is_beta,
    top,
    seed,
):
    """From the chunk statistics: the parameters, then the read-write compress pass."""
    e_pos = np.float32(e_pos)  # keep every element operation in float32, like the reference
    e_neg = np.float32(e_neg)
    d = np.float32(d)
    top = np.float32(top)
    std, amax, finite = _merge(n, s1, s2, mx)
    if not finite:
        return np.float32(0.0), np.float32(0.0), std, amax, False
    beta, scale = _params(std, float(amax), alpha, bits, kind)
    if kind == PRUNE:
        _prune(p, r, use_r, beta)
        return beta, scale, std, amax, True
    off = beta if offset_is_beta else np.float32(0.0)
    if scale > 0:
        _compress(p, r, use_r, stochastic, beta, off, scale, top, e_pos, e_neg, d, seed)
    else:  # every survivor maps to magnitude `off` (m = 0): scale 0 means max|W| == beta
        _compress(
            p, r, use_r, False, beta, off, np.float32(1.0), np.float32(0.0), e_pos, e_neg, d, seed
        )
    return beta, scale, std, amax, True


@nb.njit(cache=True)
def tensor_stats(p):
    """(std, maxabs, finite) of a float32 vector with the kernels' chunked reduction."""
    n = p.size
    nch = (n + CHUNK - 1) // CHUNK
    s1 = np.empty(nch, np.float64)
    s2 = np.empty(nch, np.float64)
    mx = np.empty(nch, np.float32)
    _chunk_stats(p, p, False, s1, s2, mx)
    return _merge(n, s1, s2, mx)
