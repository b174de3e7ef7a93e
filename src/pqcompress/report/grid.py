"""The grid study's view of a sweep: one cell per (alpha, bits), best over the other axes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pqcompress.metrics.efficiency import efficiency_score
from pqcompress.report.store import Run, Sweep

GRID_AXES = ("alpha", "bits")
# how an unfinished cell is shown, most informative first
_STATUS_ORDER = ("running", "interrupted", "pending", "failed")


@dataclass(frozen=True)
class Cell:
    """The runs at one (alpha, bits) and the finished one with the best test accuracy."""

    alpha: float
    bits: int
    runs: tuple[Run, ...]
    best: Run | None

    @property
    def status(self) -> str:
        """'done' when a run finished, else the most telling status of its runs."""
        if self.best is not None:
            return "done"
        statuses = {r.status for r in self.runs}
        return next((s for s in _STATUS_ORDER if s in statuses), "pending")

    @property
    def pending(self) -> int:
        """Runs of this cell that have not finished (a better one may still come)."""
        return sum(not r.finished for r in self.runs)


@dataclass(frozen=True)
class Grid:
    """Cells indexed by (alpha, bits); axes sorted (alpha ascending, bits descending)."""

    alphas: tuple[float, ...]
    bits: tuple[int, ...]
    cells: dict[tuple[float, int], Cell]
    best_over: tuple[str, ...]  # the non-grid axes that vary between runs of a cell

    def cell(self, alpha: float, bits: int) -> Cell | None:
        return self.cells.get((alpha, bits))

    @property
    def baseline(self) -> Run | None:
        """METHOD.md §2: the best uncompressed run (alpha 0, 32 bits) over the other axes."""
        cell = self.cells.get((0.0, 32))
        return cell.best if cell is not None else None


def _best(runs: Sequence[Run]) -> Run | None:
    """Highest test accuracy; ties: lower density, then earlier point."""
    done = [r for r in runs if r.finished and r.best_test_acc is not None]
    if not done:
        return None
    return min(
        done,
        key=lambda r: (
            -float(r.best_test_acc or 0.0),
            r.density_at_best if r.density_at_best is not None else 1.0,
            r.point_index,
        ),
    )


def _varying_axes(runs: Sequence[Run]) -> set[str]:
    keys = {k for r in runs for k in r.params} - set(GRID_AXES)
    out = set()
    for key in keys:
        values = {repr(r.params.get(key)) for r in runs}
        if len(values) > 1:
            out.add(key)
    lrs = {r.lr for r in runs}
    if len(lrs) > 1 and not any(k in out for k in ("lr", "train.lr")):
        out.add("train.lr")
    return out


def build_grid(sweep: Sweep) -> Grid:
    """Group the sweep's runs by (alpha, bits) and pick each cell's best finished run.

    Runs that ask for a density (``target_density``) have no alpha of their own: they are left
    out of the grid and shown in the points table (``tables.points_table``)."""
    groups: dict[tuple[float, int], list[Run]] = {}
    for run in sweep.runs:
        if run.target_density is not None:
            continue
        groups.setdefault((round(run.alpha, 6), run.bits), []).append(run)
    varying: set[str] = set()
    cells = {}
    for key, runs in groups.items():
        varying |= _varying_axes(runs)
        cells[key] = Cell(key[0], key[1], tuple(runs), _best(runs))
    return Grid(
        alphas=tuple(sorted({k[0] for k in groups})),
        bits=tuple(sorted({k[1] for k in groups}, reverse=True)),
        cells=cells,
        best_over=tuple(sorted(varying)),
    )


@dataclass(frozen=True)
class Score:
    """The Efficiency Score of a cell's best run for one rho."""

    alpha: float
    bits: int
    rho: float
    value: float
    run: Run


def efficiency_scores(grid: Grid, rhos: Sequence[float]) -> list[Score]:
    """PE for every finished cell and rho, against ``grid.baseline``; [] without a baseline."""
    base = grid.baseline
    if base is None or not base.best_test_acc:
        return []
    out = []
    for rho in rhos:
        for alpha in grid.alphas:
            for bits in grid.bits:
                cell = grid.cell(alpha, bits)
                run = cell.best if cell else None
                if run is None or run.density_at_best is None or run.best_test_acc is None:
                    continue
                pe = efficiency_score(
                    run.best_test_acc, base.best_test_acc, run.density_at_best, bits, rho
                )
                out.append(Score(alpha, bits, rho, pe, run))
    return out


def most_compressed(sweep: Sweep) -> Run | None:
    """The finished compressed run with the smallest RC (ties: smaller .pqz, earlier point)."""
    done = [r for r in sweep.finished if r.compression is not None and r.rc is not None]
    if not done:
        return None
    return min(
        done,
        key=lambda r: (r.rc, r.pqz_bytes if r.pqz_bytes else math.inf, r.point_index),
    )
