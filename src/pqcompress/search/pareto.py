"""Objective orientation, normalisation, feasibility, non-dominated fronts and hypervolume.

Every objective is turned into a value to **minimise**, normalised so that one reference point
serves every algorithm of a study:

- ``accuracy`` -> ``(1 - accuracy) / (1 - floor)``: 0 is a perfect model, 1 is a model exactly
  at the accuracy floor (the constraint), so every feasible point lies in [0, 1];
- ``nonzero`` -> the nonzero share itself (1 = nothing pruned);
- ``size`` and ``latency`` -> the ratio to the unmodified model's (1 = no gain).

The **reference point is 1 in every normalised objective**: the hypervolume (pymoo's ``HV``)
counts only what is better than "at the floor, unpruned, no smaller, no faster", and it is the
same for all algorithms and repeats of a study. Infeasible points never enter a front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

REFERENCE_VALUE = 1.0


@dataclass(frozen=True)
class Normaliser:
    objectives: tuple[str, ...]
    accuracy_floor: float
    reference: Mapping[str, float]  # the unmodified model's measures (size, latency)

    def vector(self, measured: Mapping[str, float]) -> np.ndarray:
        out = []
        for name in self.objectives:
            v = float(measured[name])
            if name == "accuracy":
                out.append((1.0 - v) / max(1e-12, 1.0 - self.accuracy_floor))
            elif name == "nonzero":
                out.append(v)
            else:
                out.append(v / max(1e-12, float(self.reference[name])))
        return np.array(out)

    def constraint(self, measured: Mapping[str, float]) -> float:
        """``floor - accuracy``: feasible when <= 0 (pymoo's convention)."""
        return self.accuracy_floor - float(measured["accuracy"])

    @property
    def reference_point(self) -> list[float]:
        return [REFERENCE_VALUE] * len(self.objectives)


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` (minimised) that no other row dominates (first of
    equal rows)."""
    pts = np.asarray(points, dtype=float)
    keep: list[int] = []
    for i in range(len(pts)):
        dominated = np.any(np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1))
        duplicate = any(np.array_equal(pts[i], pts[j]) for j in keep)
        if not dominated and not duplicate:
            keep.append(i)
    return np.array(keep, dtype=int)


def hypervolume(points: np.ndarray, reference_point: Sequence[float]) -> float:
    """pymoo's hypervolume of the (minimised, normalised) ``points`` w.r.t. the reference."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if pts.size == 0:
        return 0.0
    ref = np.asarray(reference_point, dtype=float)
    inside = pts[np.all(pts < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=ref)(inside))


def feasible_front(
    rows: Sequence[Mapping[str, Any]], norm: Normaliser
) -> tuple[list[Mapping[str, Any]], float]:
    """(the feasible non-dominated rows, their hypervolume). Each row has ``objectives``
    (measured values) and ``feasible``."""
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        return [], 0.0
    F = np.array([norm.vector(r["objectives"]) for r in feasible])
    idx = non_dominated(F)
    front = [feasible[i] for i in idx]
    return front, hypervolume(F[idx], norm.reference_point)
