"""Settings (runs that differ only by seed) and the accuracy/size frontier over them: the one
home of both, used by the points table and the file size vs accuracy plot."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pqcompress.report.store import Run, Sweep
from pqcompress.report.table_format import mean_sd, mean_sd_or_none


@dataclass(frozen=True)
class Setting:
    """The finished runs of one setting, in point order, with their means over seeds."""

    runs: tuple[Run, ...]
    acc: float  # mean test accuracy at the best validation epoch (Run.headline_acc)
    acc_sd: float | None  # sample sd over seeds; None with one seed
    density: float | None  # mean density at that epoch (fraction)
    pqz_bytes: float | None  # mean .pqz bytes of the runs that exported one
    val_acc: float | None = None  # mean best validation accuracy; None if a run has none

    @property
    def choice_acc(self) -> float:
        """What picks among settings ("best over" an axis): the validation accuracy when
        every run recorded one, else the test accuracy (runs without a validation split)."""
        return self.val_acc if self.val_acc is not None else self.acc

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def is_baseline(self) -> bool:
        """Uncompressed: no compression section, or alpha 0 at 32 bits."""
        r = self.first
        return r.compression is None or (r.alpha == 0 and r.bits == 32)


def settings_of(runs: Iterable[Run]) -> list[Setting]:
    """One Setting per distinct ``Run.setting`` among the finished runs with an accuracy (its
    runs in point order), ordered by the first point of each."""
    groups: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.point_index):
        if r.finished and r.headline_acc is not None:
            groups.setdefault(r.setting, []).append(r)
    out = []
    for group in groups.values():
        acc, sd = mean_sd([float(r.headline_acc) for r in group if r.headline_acc is not None])
        density = [r.headline_density for r in group if r.headline_density is not None]
        vals = [r.best_val_recorded for r in group]
        out.append(
            Setting(
                runs=tuple(group),
                acc=acc,
                acc_sd=sd,
                density=mean_sd_or_none(density)[0],
                pqz_bytes=mean_sd_or_none([float(r.pqz_bytes) for r in group if r.pqz_bytes])[0],
                val_acc=(
                    mean_sd([float(v) for v in vals if v is not None])[0]
                    if vals and all(v is not None for v in vals)
                    else None
                ),
            )
        )
    return out


def group_settings(sweep: Sweep) -> list[Setting]:
    """The settings of a sweep's finished runs (``settings_of``)."""
    return settings_of(sweep.finished)


def baseline(settings: Sequence[Setting]) -> Setting | None:
    """The uncompressed setting (the first, if several)."""
    return next((s for s in settings if s.is_baseline), None)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (size, accuracy) points that no other point beats (a smaller or equal
    size at a higher accuracy, or a smaller size at the same accuracy), ordered by size; of
    identical points the first is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def settings_front(settings: Sequence[Setting]) -> list[int]:
    """The frontier over settings' mean bytes and mean accuracy (settings without a file are
    never on it), ordered by size."""
    pts = [(s.pqz_bytes if s.pqz_bytes else math.inf, s.acc) for s in settings]
    return [i for i in pareto_front(pts) if math.isfinite(pts[i][0])]
