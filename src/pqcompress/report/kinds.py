"""Which report a results store gets: a registry of report kinds, each saying whether it
claims a store and how it writes its report. ``pqcompress report`` asks them in order (the
first that claims the store writes the report; the grid report takes what no other claims),
so a new study adds one entry here instead of another branch in the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pqcompress.report.build import ReportOptions, build_report
from pqcompress.report.distillation import build_distillation_report, is_distillation_folder
from pqcompress.report.errors import ReportError
from pqcompress.report.search import build_search_report, is_search_store
from pqcompress.report.serving import build_serving_report, is_serving_store


@dataclass(frozen=True)
class ReportRequest:
    """What the caller asked for: a named sweep, search study or serving bench of the store,
    the weight histogram's layer, the Efficiency Score's rho values, plots or not."""

    sweep: str | None = None
    search: str | None = None
    bench: str | None = None
    layer: str | None = None
    rhos: tuple[float, ...] = (1.0, 2.0, 3.0)
    plots: bool = True


@dataclass(frozen=True)
class ReportOutput:
    """The files written (the main one first), one line saying what they are, and notes."""

    files: list[Path]
    summary: str
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ReportKind:
    name: str
    claims: Callable[[Path, ReportRequest], bool]
    build: Callable[[Path, Path, ReportRequest], ReportOutput]


REPORT_KINDS: dict[str, ReportKind] = {}


def register_report_kind(kind: ReportKind) -> ReportKind:
    """Add ``kind`` (asked after those registered before it)."""
    if kind.name in REPORT_KINDS:
        raise ReportError(f"report kind {kind.name!r} is registered twice")
    REPORT_KINDS[kind.name] = kind
    return kind


def build_any(store: str | Path, out_dir: str | Path, request: ReportRequest) -> ReportOutput:
    """The report of whatever ``store`` holds, by the first kind that claims it."""
    path = Path(store)
    for kind in REPORT_KINDS.values():
        if kind.claims(path, request):
            return kind.build(path, Path(out_dir), request)
    raise ReportError(f"no report kind reads '{store}'")  # pragma: no cover - grid takes all


def _distillation_claims(path: Path, request: ReportRequest) -> bool:
    return is_distillation_folder(path)


def _distillation_build(path: Path, out: Path, request: ReportRequest) -> ReportOutput:
    files = build_distillation_report(path, out)
    return ReportOutput(files, f"the distillation study's Tables I-IV, {len(files) - 1} files")


def _serving_claims(path: Path, request: ReportRequest) -> bool:
    return bool(request.bench) or (is_serving_store(path) and not request.sweep)


def _serving_build(path: Path, out: Path, request: ReportRequest) -> ReportOutput:
    files = build_serving_report(path, out, bench=request.bench, plots=request.plots)
    return ReportOutput(files, f"the serving study's tables and plots, {len(files) - 1} files")


def _search_claims(path: Path, request: ReportRequest) -> bool:
    return bool(request.search) or is_search_store(path)


def _search_build(path: Path, out: Path, request: ReportRequest) -> ReportOutput:
    files = build_search_report(path, out, study=request.search, plots=request.plots)
    return ReportOutput(files, f"the search study's tables and plots, {len(files) - 1} files")


def _grid_build(path: Path, out: Path, request: ReportRequest) -> ReportOutput:
    options = ReportOptions(
        sweep=request.sweep, layer=request.layer, rhos=request.rhos, plots=request.plots
    )
    result = build_report(path, out, options, log=print)
    return ReportOutput(
        result.files,
        f"{len(result.tables)} tables, {len(result.plots)} plots, {result.runs} runs of sweep "
        f"'{result.sweep}'",
        tuple(result.skipped),
    )


register_report_kind(ReportKind("distillation", _distillation_claims, _distillation_build))
register_report_kind(ReportKind("serving", _serving_claims, _serving_build))
register_report_kind(ReportKind("search", _search_claims, _search_build))
register_report_kind(ReportKind("grid", lambda path, request: True, _grid_build))
