"""Seeded, class-stratified picks of sample positions (validation carve-outs, subsets, test splits)."""

from __future__ import annotations

import numpy as np


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups proportionally to ``counts`` (largest remainder, exact sum)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(min(max(total, 0), counts.sum()))
    if total == 0:
        return np.zeros_like(counts)
    exact = counts * (total / counts.sum())
    quota = np.minimum(np.floor(exact).astype(np.int64), counts)
    short = total - int(quota.sum())
    if short > 0:
        # largest remainders first; ties broken by group index for determinism
        room = quota < counts
        order = np.lexsort((np.arange(len(counts)), -(exact - quota)))
        order = order[room[order]]
        quota[order[:short]] += 1
    return quota


def stratified_pick(
    labels: np.ndarray, count: int, seed: int | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``count`` positions at random, class-proportionally: returns (picked, rest), sorted.

    The same (labels, count, seed) always gives the same pick; ``seed`` may be a list of ints
    (NumPy SeedSequence entropy) to name independent streams, e.g. ``[seed, 1]``.
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = allocate(counts, count)
    perm = rng.permutation(n)
    grouped = perm[np.argsort(inverse[perm], kind="stable")]  # by class, random within class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - starts[inverse[grouped]]
    chosen = rank < quota[inverse[grouped]]
    picked = np.sort(grouped[chosen])
    rest = np.sort(grouped[~chosen])
    return picked, rest


def fraction_count(n: int, fraction: float) -> int:
    """round(n * fraction), at least 1 when fraction > 0 and n > 1, at most n - 1."""
    if fraction <= 0 or n <= 1:
        return 0
    return int(min(max(round(n * fraction), 1), n - 1))
