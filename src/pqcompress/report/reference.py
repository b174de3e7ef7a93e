"""The grid study's published Table I (CNN5 on CIFAR-10, docs/method.md §6): accuracy, density, PE."""

from __future__ import annotations

MODEL, DATASET = "cnn5", "cifar10"
BASELINE_ACC = 87.21  # % (alpha 0, 32 bits, best over lr)
BITS = (32, 16, 8, 4, 3)

# alpha -> one (test accuracy %, density %) per BITS entry, best over learning rate
ACC_DENSITY: dict[float, tuple[tuple[float, float], ...]] = {
    0.0: ((87.21, 100.0), (86.84, 73.55), (62.15, 99.93), (10.95, 100.0), (12.05, 100.0)),
    0.125: ((83.74, 18.64), (83.76, 14.72), (84.04, 11.22), (83.85, 19.69), (74.95, 33.0)),
    0.25: ((84.49, 8.04), (84.48, 16.38), (83.03, 22.66), (81.89, 14.91), (76.43, 31.71)),
    0.375: ((84.42, 6.58), (83.61, 6.56), (84.78, 8.68), (79.75, 12.53), (76.29, 25.05)),
    0.5: ((83.33, 6.29), (83.34, 15.22), (83.58, 13.99), (80.74, 8.5), (76.0, 22.29)),
    0.625: ((83.2, 12.09), (83.04, 5.45), (83.41, 7.42), (79.2, 6.93), (75.6, 18.6)),
    0.75: ((82.68, 5.81), (82.72, 7.06), (82.47, 12.78), (79.34, 7.11), (75.69, 13.43)),
}

PE_BITS = (8, 4, 3)
# (alpha, rho) -> PE at 8, 4 and 3 bits
EFFICIENCY: dict[tuple[float, int], tuple[float, float, float]] = {
    (0.125, 1): (34.36, 39.06, 27.78),
    (0.25, 1): (16.81, 50.37, 29.48),
    (0.375, 1): (44.81, 58.37, 37.25),
    (0.5, 1): (27.39, 87.09, 41.7),
    (0.625, 1): (51.55, 104.9, 49.72),
    (0.75, 1): (29.59, 102.42, 68.95),
    (0.125, 2): (33.11, 37.55, 23.87),
    (0.25, 2): (16.0, 47.3, 25.83),
    (0.375, 2): (43.56, 53.37, 32.59),
    (0.5, 2): (26.25, 80.62, 36.33),
    (0.625, 2): (49.3, 95.27, 43.1),
    (0.75, 2): (27.98, 93.18, 59.84),
    (0.125, 3): (31.9, 36.1, 20.52),
    (0.25, 3): (15.23, 44.41, 22.64),
    (0.375, 3): (42.35, 48.8, 28.5),
    (0.5, 3): (25.16, 74.63, 31.66),
    (0.625, 3): (47.15, 86.52, 37.36),
    (0.75, 3): (26.45, 84.77, 51.94),
}


def acc_density(alpha: float, bits: int) -> tuple[float, float] | None:
    """Their (accuracy %, density %) at a grid point, or None if Table I has no such cell."""
    row = ACC_DENSITY.get(round(alpha, 6))
    if row is None or bits not in BITS:
        return None
    return row[BITS.index(bits)]


def efficiency(alpha: float, bits: int, rho: float) -> float | None:
    """Their PE at a grid point and rho, or None if not published."""
    if rho != int(rho) or bits not in PE_BITS:
        return None
    row = EFFICIENCY.get((round(alpha, 6), int(rho)))
    return None if row is None else row[PE_BITS.index(bits)]


# The modulation study (docs/method.md §6, seed table `modulation_amc1d`): AMC-1D on a 7-class
# RadioML 2018.01A subset, SGD lr 0.05 momentum 0.9, batch 64, 70/30 split. Per alpha, one
# value per MODULATION_BITS entry: accuracy %, sparsity % (none published at alpha 0) and the
# file size as the study prints it ("Mb"; its float32 file is 3.18).
MODULATION_MODEL, MODULATION_DATASETS = "amc1d", ("modulation", "radioml")
MODULATION_BITS = (32, 16, 8, 4, 3)
MODULATION: dict[float, dict[str, tuple[float, ...] | None]] = {
    0.0: {
        "accuracy": (97.06, 96.93, 97.0, 84.18, 83.89),
        "sparsity": None,
        "file_mb": (3.18, 1.59, 0.8, 0.4, 0.3),
    },
    0.25: {
        "accuracy": (96.13, 96.68, 95.77, 92.03, 84.0),
        "sparsity": (42.17, 47.31, 48.11, 45.85, 38.5),
        "file_mb": (1.84, 0.84, 0.41, 0.26, 0.18),
    },
    0.5: {
        "accuracy": (96.7, 96.41, 96.43, 84.31, 83.41),
        "sparsity": (66.26, 60.82, 61.28, 60.61, 41.6),
        "file_mb": (1.08, 0.62, 0.31, 0.16, 0.17),
    },
    0.75: {
        "accuracy": (94.46, 95.2, 95.18, 90.55, 83.36),
        "sparsity": (74.78, 69.75, 76.11, 68.41, 62.44),
        "file_mb": (0.8, 0.48, 0.19, 0.13, 0.11),
    },
}


def modulation_cell(alpha: float, bits: int) -> dict[str, float | None] | None:
    """Their accuracy %, sparsity % and file size at a grid point, or None if not published."""
    row = MODULATION.get(round(alpha, 6))
    if row is None or bits not in MODULATION_BITS:
        return None
    i = MODULATION_BITS.index(bits)
    return {k: (v[i] if v is not None else None) for k, v in row.items()}
