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
    """(sum, sum of squares, max |x|) of one chunk: float64 sums, each loop vectorized.

    max |x| is taken on the bit patterns with the sign bit cleared: for floats of one sign
    their order is the integers' order, and an integer max vectorizes where a float max
    (which must honour NaN) does not; that made this the pass's costliest loop (3x). A NaN
    pattern is above every finite one, so a NaN still ends as a non-finite max.
    """
    a = 0.0
    for i in range(q.size):
        a += q[i]
    b = 0.0
    for i in range(q.size):
        b += np.float64(q[i]) * q[i]
    bits = q.view(np.uint32)
    m = np.uint32(0)
    for i in range(bits.size):
        x = bits[i] & np.uint32(0x7FFFFFFF)
        m = x if x > m else m
    return a, b, np.array([m], np.uint32).view(np.float32)[0]


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _stats_of_sum(q, r):
    """``_stats_of(q + r)``, the sum held in a chunk-sized temporary."""
    w = np.empty(q.size, np.float32)
    for i in range(q.size):
        w[i] = q[i] + r[i]
    return _stats_of(w)


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _latent_stats(updated, r):
    """A fused update's latent chunk: ``r <- updated + r`` (the float weights), and their
    statistics while the chunk is in cache."""
    for i in range(r.size):
        r[i] = updated[i] + r[i]
    return _stats_of(r)


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
def _compress(p, r, use_r, r_is_w, stochastic, beta, off, scale, top, e_pos, e_neg, d, seed):
    """Latent (``use_r``): the float weights are ``p + r``, or ``r`` itself when ``r_is_w``
    (a fused update left them there); afterwards ``p = C(w)`` and ``r = w - C(w)``."""
    n = p.size
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        if use_r and r_is_w:
            rr = r[lo:hi]
            for i in range(q.size):
                w = rr[i]
                dd = _uniform01(seed, lo + i) if stochastic else d
                v = _grid(w, beta, off, scale, top, e_pos, e_neg, dd)
                q[i] = v
                rr[i] = w - v
        elif use_r:
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
def _prune(p, r, use_r, r_is_w, beta):
    n = p.size
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        if use_r:
            rr = r[lo:hi]
            for i in range(q.size):
                w = rr[i] if r_is_w else q[i] + rr[i]
                v = w if abs(w) >= beta else np.float32(0.0)
                q[i] = v
                rr[i] = w - v
        else:
            for i in range(q.size):
                w = q[i]
                q[i] = w if abs(w) >= beta else np.float32(0.0)


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _sgd_update(q, out, gg, bb, first, lr, mom, damp, wd, nesterov):
    """torch.optim.SGD's update of one chunk ``q`` into ``out`` (``q`` itself in place; a
    fresh temporary for latent weights), ``bb`` (momentum) in place. Called with ``out`` the
    same array or a new one, so the compiler knows which it is and vectorizes each loop."""
    one = np.float32(1.0)
    # loop-invariant cases outside the loops, so each inner loop vectorizes
    if mom == 0:
        for i in range(q.size):
            out[i] = q[i] - lr * (gg[i] + wd * q[i])
    elif first and nesterov:
        for i in range(q.size):
            d = gg[i] + wd * q[i]
            bb[i] = d
            out[i] = q[i] - lr * (d + mom * d)
    elif first:
        for i in range(q.size):
            d = gg[i] + wd * q[i]
            bb[i] = d
            out[i] = q[i] - lr * d
    elif nesterov:
        for i in range(q.size):
            d = gg[i] + wd * q[i]
            b = mom * bb[i] + (one - damp) * d
            bb[i] = b
            out[i] = q[i] - lr * (d + mom * b)
    else:
        for i in range(q.size):
            d = gg[i] + wd * q[i]
            b = mom * bb[i] + (one - damp) * d
            bb[i] = b
            out[i] = q[i] - lr * b


@nb.njit(cache=True, parallel=True, fastmath={"reassoc", "nsz"})
def _sgd_chunk_stats(p, r, use_r, g, buf, first, lr, mom, damp, wd, nesterov, s1, s2, mx):
    """torch.optim.SGD's update of ``p`` (and ``buf``), chunk by chunk, followed at once by the
    compressor's statistics of the chunk while it is in cache (as ``_chunk_stats``).

    The update is element by element in float32 (reassociation cannot apply: each element is
    one chain of dependent operations): ``d = g + wd * p``; ``buf = d`` on the first step, else
    ``mom * buf + (1 - damp) * d``; ``d = d + mom * buf`` (Nesterov) or ``buf``;
    ``p = p - lr * d``.

    Latent (``use_r``): the updated weights are not stored in ``p`` (the compress pass writes
    it anyway) but added to the residual at once, so ``r`` leaves holding the float weights
    ``w = (p - lr * d) + r`` (the same two roundings as storing ``p`` first) and the compress
    pass runs in ``r_is_w`` mode: one read and one write of the weights fewer.
    """
    n = p.size
    for c in nb.prange(s1.size):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        gg = g[lo:hi]
        bb = buf[lo:hi]
        if use_r:
            tmp = np.empty(q.size, np.float32)
            _sgd_update(q, tmp, gg, bb, first, lr, mom, damp, wd, nesterov)
            s1[c], s2[c], mx[c] = _latent_stats(tmp, r[lo:hi])
        else:
            _sgd_update(q, q, gg, bb, first, lr, mom, damp, wd, nesterov)
            s1[c], s2[c], mx[c] = _stats_of(q)


@nb.njit(cache=True, inline="always", fastmath={"reassoc", "nsz"})
def _adam_update(q, out, gg, mm, vv, w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink,
                 decoupled):  # fmt: skip
    """torch.optim.Adam's (AdamW's) update of one chunk ``q`` into ``out``, as ``_sgd_update``."""
    if decoupled:
        for i in range(q.size):
            x = q[i] * shrink
            gi = gg[i]
            a = mm[i] + w1 * (gi - mm[i])
            b = vv[i] * beta2 + w2 * gi * gi
            mm[i] = a
            vv[i] = b
            out[i] = x - step_size * (a / (np.sqrt(b) / bc2_sqrt + eps))
    else:
        for i in range(q.size):
            x = q[i]
            gi = gg[i] + wd * x
            a = mm[i] + w1 * (gi - mm[i])
            b = vv[i] * beta2 + w2 * gi * gi
            mm[i] = a
            vv[i] = b
            out[i] = x - step_size * (a / (np.sqrt(b) / bc2_sqrt + eps))


@nb.njit(cache=True, parallel=True, fastmath={"reassoc", "nsz"})
def _adam_chunk_stats(p, r, use_r, g, m, v, w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink,
                      decoupled, s1, s2, mx):  # fmt: skip
    """torch.optim.Adam's (and AdamW's) update of ``p``, ``m`` and ``v``, chunk by chunk, then
    the compressor's statistics of the chunk while it is in cache (as ``_sgd_chunk_stats``,
    latent weights included).

    Element by element in float32, torch's single-tensor formula: weight decay either
    ``p *= shrink`` (decoupled, AdamW: ``shrink = 1 - lr * wd``) or ``g += wd * p``;
    ``m += w1 * (g - m)`` (``lerp``, ``w1 = 1 - beta1``); ``v = v * beta2 + w2 * g * g``
    (``w2 = 1 - beta2``); ``p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)``. The scalars
    are computed once per step by the caller, in float64 like torch, then rounded to float32.
    """
    n = p.size
    for c in nb.prange(s1.size):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        q = p[lo:hi]
        gg = g[lo:hi]
        mm = m[lo:hi]
        vv = v[lo:hi]
        if use_r:
            tmp = np.empty(q.size, np.float32)
            _adam_update(q, tmp, gg, mm, vv, w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink,
                         decoupled)  # fmt: skip
            s1[c], s2[c], mx[c] = _latent_stats(tmp, r[lo:hi])
        else:
            _adam_update(q, q, gg, mm, vv, w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink,
                         decoupled)  # fmt: skip
            s1[c], s2[c], mx[c] = _stats_of(q)


@nb.njit(cache=True)
def adam_compress_flat(p, r, use_r, g, m, v, adam, pq):
    """One Adam/AdamW step of ``p`` fused with its P->Q application, as ``sgd_compress_flat``;
    ``adam`` = (w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink, decoupled), see
    ``_adam_chunk_stats``."""
    w1, beta2, w2, eps, bc2_sqrt, step_size, wd, shrink, decoupled = adam
    s1, s2, mx = _chunk_arrays(p.size)
    f32 = np.float32
    _adam_chunk_stats(p, r, use_r, g, m, v, f32(w1), f32(beta2), f32(w2), f32(eps),
                      f32(bc2_sqrt), f32(step_size), f32(wd), f32(shrink), decoupled, s1, s2,
                      mx)  # fmt: skip
    return _finish(p, r, use_r, use_r, s1, s2, mx, pq)


@nb.njit(cache=True)
def sgd_compress_flat(p, r, use_r, g, buf, first, sgd, pq):
    """One SGD step of ``p`` fused with its P->Q application (``compress_flat``): the update
    and the statistics share one pass, so the weights, gradient and momentum are read once
    for the optimizer and the statistics, and once more to compress. ``sgd`` = (lr,
    momentum, dampening, weight decay, nesterov). Same returns as ``compress_flat``; when not
    finite, nothing is compressed: in place ``p`` holds the updated weights, latent ``r``
    does (``p`` keeps the last compressed ones)."""
    lr, mom, damp, wd, nesterov = sgd
    s1, s2, mx = _chunk_arrays(p.size)
    f32 = np.float32
    _sgd_chunk_stats(p, r, use_r, g, buf, first, f32(lr), f32(mom), f32(damp), f32(wd), nesterov,
                     s1, s2, mx)  # fmt: skip
    return _finish(p, r, use_r, use_r, s1, s2, mx, pq)


@nb.njit(cache=True)
def compress_flat(p, r, use_r, pq):
    """Compress float32 vector ``p`` in place; latent: ``w = p + r`` and ``r <- w - C(w)``.
    ``pq`` = (kind id, alpha, bits, e_pos, e_neg, d, stochastic, offset is beta, top, seed),
    as ``ops.fused._kernel_args`` makes it.

    Returns (beta, scale, std, maxabs, finite). Nothing is written when not finite.
    """
    s1, s2, mx = _chunk_arrays(p.size)
    _chunk_stats(p, r, use_r, s1, s2, mx)
    return _finish(p, r, use_r, False, s1, s2, mx, pq)


@nb.njit(cache=True)
def _chunk_arrays(n):
    """Per-chunk (sum, sum of squares, max |x|) accumulators for ``n`` elements."""
    nch = (n + CHUNK - 1) // CHUNK
    return np.empty(nch, np.float64), np.empty(nch, np.float64), np.empty(nch, np.float32)


@nb.njit(cache=True)
def _finish(p, r, use_r, r_is_w, s1, s2, mx, pq):
    """From the chunk statistics: the parameters, then the read-write compress pass (latent
    with ``r_is_w``: ``r`` holds the float weights, as a fused update leaves them). Nothing is
    written when not finite."""
    kind, alpha, bits, e_pos, e_neg, d, stochastic, offset_is_beta, top, seed = pq
    e_pos = np.float32(e_pos)  # keep every element operation in float32, like the reference
    e_neg = np.float32(e_neg)
    d = np.float32(d)
    top = np.float32(top)
    std, amax, finite = _merge(p.size, s1, s2, mx)
    if not finite:
        return np.float32(0.0), np.float32(0.0), std, amax, False
    beta, scale = _params(std, float(amax), alpha, bits, kind)
    if kind == PRUNE:
        _prune(p, r, use_r, r_is_w, beta)
        return beta, scale, std, amax, True
    off = beta if offset_is_beta else np.float32(0.0)
    if scale > 0:
        _compress(p, r, use_r, r_is_w, stochastic, beta, off, scale, top, e_pos, e_neg, d, seed)
    else:  # every survivor maps to magnitude `off` (m = 0): scale 0 means max|W| == beta
        one, zero = np.float32(1.0), np.float32(0.0)
        _compress(p, r, use_r, r_is_w, False, beta, off, one, zero, e_pos, e_neg, d, seed)
    return beta, scale, std, amax, True


@nb.njit(cache=True)
def tensor_stats(p):
    """(std, maxabs, finite) of a float32 vector with the kernels' chunked reduction."""
    s1, s2, mx = _chunk_arrays(p.size)
    _chunk_stats(p, p, False, s1, s2, mx)
    return _merge(p.size, s1, s2, mx)
