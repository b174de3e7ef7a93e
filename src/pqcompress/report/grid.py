"""The grid study's view of a sweep: one cell per (alpha, bits), the best setting over the other
axes, its seeds averaged (mean ± sd), never the best seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pqcompress.metrics.efficiency import efficiency_score
from pqcompress.report.settings import Setting, settings_of
from pqcompress.report.store import Run, Sweep

T = TypeVar("T")

GRID_AXES = ("alpha", "bits")
# how an unfinished cell is shown, most informative first
_STATUS_ORDER = ("running", "interrupted", "pending", "failed")


@dataclass(frozen=True)
class Cell:
    """The runs at one (alpha, bits); ``setting`` is the setting (the params but the seed)
    with the best mean validation accuracy among its finished runs (``Setting.choice_acc``),
    ``best`` its first run."""

    alpha: float
    bits: int
    runs: tuple[Run, ...]
    setting: Setting | None = None

    @property
    def best(self) -> Run | None:
        return self.setting.first if self.setting is not None else None

    @property
    def seeds(self) -> tuple[Run, ...]:
        """The chosen setting's finished runs, one per seed, in point order."""
        return self.setting.runs if self.setting is not None else ()

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

    @property
    def acc(self) -> float | None:
        """Mean test accuracy (best epoch) over the chosen setting's seeds."""
        return self.setting.acc if self.setting is not None else None

    @property
    def acc_sd(self) -> float | None:
        """Sample sd of that accuracy over seeds (None with one seed)."""
        return self.setting.acc_sd if self.setting is not None else None

    @property
    def density(self) -> float | None:
        """Mean density at the best epoch over the chosen setting's seeds."""
        return self.setting.density if self.setting is not None else None

    @property
    def pqz_bytes(self) -> float | None:
        """Mean ``.pqz`` size over the chosen setting's seeds."""
        return self.setting.pqz_bytes if self.setting is not None else None


@dataclass(frozen=True)
class Grid:
    """Cells indexed by (alpha, bits); axes sorted (alpha ascending, bits descending)."""

    alphas: tuple[float, ...]
    bits: tuple[int, ...]
    cells: dict[tuple[float, int], Cell]
    best_over: tuple[str, ...]  # the non-grid axes that vary between runs of a cell

    def cell(self, alpha: float, bits: int) -> Cell | None:
        return self.cells.get((alpha, bits))

    def matched(
        self, theirs: Callable[[float, int], T | None]
    ) -> Iterator[tuple[float, int, T, Cell]]:
        """(alpha, bits, their figures, our cell) for every grid point where a study printed
        figures (``theirs(alpha, bits)`` not None) and we have a cell, in grid order."""
        for alpha in self.alphas:
            for bits in self.bits:
                figures, cell = theirs(alpha, bits), self.cell(alpha, bits)
                if figures is not None and cell is not None:
                    yield alpha, bits, figures, cell

    @property
    def baseline(self) -> Run | None:
        """docs/method.md §2: the uncompressed run (alpha 0, 32 bits) of the best setting over the
        other axes (its first seed; ``baseline_acc`` is the mean over its seeds)."""
        cell = self.cells.get((0.0, 32))
        return cell.best if cell is not None else None

    @property
    def baseline_acc(self) -> float | None:
        """The uncompressed cell's mean test accuracy over seeds (acc_base of docs/method.md §2)."""
        cell = self.cells.get((0.0, 32))
        return cell.acc if cell is not None else None


def _best_setting(runs: Sequence[Run]) -> Setting | None:
    """The setting (params but the seed) of the finished runs with the highest mean
    validation accuracy over its seeds (test accuracy where runs recorded no validation
    accuracy: ``Setting.choice_acc``); ties: lower mean density, then the earlier point."""
    settings = settings_of(runs)
    if not settings:
        return None

    def rank(st: Setting) -> tuple[float, float, int]:
        density = st.density if st.density is not None else 1.0
        return (-st.choice_acc, density, st.first.point_index)

    return min(settings, key=rank)


def _varying_axes(runs: Sequence[Run]) -> set[str]:
    """The axes besides alpha and bits (and the seed, which is averaged) that vary."""
    keys = {k for r in runs for k in r.params} - set(GRID_AXES) - {"seed", "train.seed"}
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
    """Group the sweep's runs by (alpha, bits) and pick each cell's best setting (its seeds).

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
        cells[key] = Cell(key[0], key[1], tuple(runs), _best_setting(runs))
    return Grid(
        alphas=tuple(sorted({k[0] for k in groups})),
        bits=tuple(sorted({k[1] for k in groups}, reverse=True)),
        cells=cells,
        best_over=tuple(sorted(varying)),
    )


@dataclass(frozen=True)
class Score:
    """The Efficiency Score of a cell's chosen setting for one rho (means over its seeds)."""

    alpha: float
    bits: int
    rho: float
    value: float
    run: Run
    acc: float
    density: float

    @property
    def rc(self) -> float:
        """RC = density * bits / 32 (docs/method.md §2)."""
        return self.density * self.bits / 32


def efficiency_scores(grid: Grid, rhos: Sequence[float]) -> list[Score]:
    """PE for every finished cell and rho, against ``grid.baseline_acc``; [] without one."""
    base = grid.baseline_acc
    if not base:
        return []
    out = []
    for rho in rhos:
        for alpha in grid.alphas:
            for bits in grid.bits:
                cell = grid.cell(alpha, bits)
                if cell is None or cell.best is None or cell.acc is None or cell.density is None:
                    continue
                pe = efficiency_score(cell.acc, base, cell.density, bits, rho)
                out.append(Score(alpha, bits, rho, pe, cell.best, cell.acc, cell.density))
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
