"""The grid study's published Table I (CNN5 on CIFAR-10, docs/method.md §6): accuracy, density, PE."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from pqcompress.report.published import published

_GRID = published("grid_cnn5_cifar10")
MODEL, DATASET = str(_GRID["model"]), str(_GRID["dataset"])
BASELINE_ACC = float(_GRID["baseline_acc"])  # % (alpha 0, 32 bits, best over lr)
BITS = tuple(int(b) for b in _GRID["bits"])

# alpha -> one (test accuracy %, density %) per BITS entry, best over learning rate
ACC_DENSITY: dict[float, tuple[tuple[float, float], ...]] = {
    float(alpha): tuple((float(acc), float(dens)) for acc, dens in row)
    for alpha, row in _GRID["acc_density"].items()
}

PE_BITS = tuple(int(b) for b in _GRID["pe_bits"])
# (alpha, rho) -> PE at 8, 4 and 3 bits
EFFICIENCY: dict[tuple[float, int], tuple[float, float, float]] = {
    (float(e["alpha"]), int(e["rho"])): tuple(float(v) for v in e["pe"])  # type: ignore[misc]
    for e in _GRID["efficiency"]
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


# The modulation study (docs/method.md §6): per alpha, one value per MODULATION_BITS entry:
# accuracy %, sparsity % (none published at alpha 0) and the file size as the study prints it
_MOD = published("modulation_amc1d")
MODULATION_MODEL = str(_MOD["model"])
MODULATION_DATASETS = tuple(str(d) for d in _MOD["datasets"])
MODULATION_BITS = tuple(int(b) for b in _MOD["bits"])
MODULATION: dict[float, dict[str, tuple[float, ...] | None]] = {
    float(alpha): {
        key: (tuple(float(v) for v in values) if values is not None else None)
        for key, values in row.items()
    }
    for alpha, row in _MOD["cells"].items()
}


def modulation_cell(alpha: float, bits: int) -> dict[str, float | None] | None:
    """Their accuracy %, sparsity % and file size at a grid point, or None if not published."""
    row = MODULATION.get(round(alpha, 6))
    if row is None or bits not in MODULATION_BITS:
        return None
    i = MODULATION_BITS.index(bits)
    return {k: (v[i] if v is not None else None) for k, v in row.items()}


def literature(model: object, dataset: object) -> dict[str, Any] | None:
    """The published figures a sweep of ``model`` on ``dataset`` is set beside
    (``published/literature_<model>_<dataset>.yaml``), or None when there are none."""
    name = f"literature_{model}_{dataset}"
    if not re.fullmatch(r"\w+", name):  # a mixed sweep ('a, b'), a factory path: none
        return None
    if not (resources.files("pqcompress.report") / "published" / f"{name}.yaml").is_file():
        return None
    return published(name)
