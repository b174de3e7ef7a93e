"""``build_report``: read a sweep from the results store, write tables, plots and index.html."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from pqcompress.atomic import write_text_atomic
from pqcompress.report import html, plots, reference, tables
from pqcompress.report.errors import PlotSkipped, ReportError
from pqcompress.report.grid import Grid, build_grid, most_compressed
from pqcompress.report.store import Sweep, read_sweep
from pqcompress.report.weights import layer_weights

DEFAULT_RHOS = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class ReportOptions:
    """What to report: which sweep (None: the store's only one), the layer of the weight
    histogram (None: the largest compressed layer of the most compressed finished run), the
    rho values of the Efficiency Score, and whether to draw plots (needs matplotlib)."""

    sweep: str | None = None
    layer: str | None = None
    rhos: tuple[float, ...] = DEFAULT_RHOS
    plots: bool = True

    def __post_init__(self) -> None:
        if not self.rhos:
            raise ReportError("rhos must name at least one value, e.g. 1 2 3")
        for rho in self.rhos:
            if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho > 0:
                raise ReportError(f"rho={rho!r} is not accepted; rho must be a number > 0")
        object.__setattr__(self, "rhos", tuple(float(r) for r in self.rhos))


@dataclass(frozen=True)
class ReportResult:
    """Where everything went: index.html, each table's files, each plot's files, and the
    plots left out (with the reason)."""

    out_dir: Path
    index_html: Path
    sweep: str
    runs: int
    tables: dict[str, list[Path]] = field(default_factory=dict)
    plots: dict[str, list[Path]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def files(self) -> list[Path]:
        out = [self.index_html]
        for paths in (*self.tables.values(), *self.plots.values()):
            out.extend(paths)
        return out


PLOT_TEXT = {
    "accuracy_vs_bits": (
        "Test accuracy vs bits",
        "One line per pruning α (same color in every plot): each point is the cell's best run. "
        "The dashed line is the uncompressed baseline. Where a line drops, that bit width is too "
        "coarse for that α.",
    ),
    "density_vs_bits": (
        "Density vs bits",
        "Share of nonzero compressed weights at the best epoch (log scale). Higher α prunes more; "
        "at few bits, quantization also rounds small survivors to zero.",
    ),
    "efficiency_heatmap": (
        "Efficiency score heatmap",
        "PE per α (rows) and bits (columns), one panel per ρ, colors on a log scale. Bright = "
        "more compression per unit of accuracy lost; a larger ρ punishes lost accuracy more.",
    ),
    "efficiency_vs_bits": (
        "Efficiency score vs bits",
        "The heatmap's numbers as lines per α. Above the dashed line (PE = 1) compression is "
        "worth its accuracy cost.",
    ),
    "accuracy_per_epoch": (
        "Accuracy per epoch",
        "Test (solid) and train (dashed) accuracy per epoch of each run; the star marks the best "
        "epoch (highest validation accuracy; highest test accuracy for runs without validation records), where the tables take their numbers.",
    ),
    "weight_histogram": (
        "Weight histogram before and after compression",
        "Top: float weights of the layer. Bottom: the values decoded from the exported .pqz file "
        "(log counts): a spike at zero (pruned) and a few quantization levels.",
    ),
    "confusion_matrices": (
        "Confusion matrices",
        "Rows are true classes, columns predictions, colors the share of the row; the baseline "
        "beside the most compressed model (smallest density × bits / 32).",
    ),
    "size_vs_accuracy": (
        ".pqz file size vs accuracy",
        "One point per setting (mean over seeds; bars: ± one sd, hollow marks: each seed); color "
        "= α, marker = bits. The red steps join the frontier of the points table: settings that "
        "no other setting beats on both size and accuracy, numbered by size and named in the key.",
    ),
}


def _plot_jobs(
    sweep: Sweep, grid: Grid, options: ReportOptions, out: Path
) -> list[tuple[str, Callable[[], list[Path]]]]:
    rhos = options.rhos
    base, small = grid.baseline, most_compressed(sweep)

    def weights() -> list[Path]:
        if small is None:
            raise PlotSkipped("weight histogram: no finished compressed run")
        return plots.weight_histogram(layer_weights(small, options.layer, base), out)

    panels = [("baseline", base), ("most compressed", small)]
    return [
        ("accuracy_vs_bits", lambda: plots.accuracy_vs_bits(grid, out)),
        ("density_vs_bits", lambda: plots.density_vs_bits(grid, out)),
        ("efficiency_heatmap", lambda: plots.efficiency_heatmap(grid, rhos, out)),
        ("efficiency_vs_bits", lambda: plots.efficiency_vs_bits(grid, rhos, out)),
        ("accuracy_per_epoch", lambda: plots.training_curves(grid, sweep, out)),
        ("weight_histogram", weights),
        (
            "confusion_matrices",
            lambda: plots.confusion_matrices([(t, r) for t, r in panels if r is not None], out),
        ),
        ("size_vs_accuracy", lambda: plots.size_vs_accuracy(grid, sweep, out)),
    ]


def _meta(sweep: Sweep) -> list[tuple[str, str]]:
    counts = sweep.status_counts()
    failed = counts.get("failed", 0)
    finished = [r.finished_at for r in sweep.runs if r.finished_at]
    status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    failed_html = f'<span class="bad">{failed}</span>' if failed else "0"
    return [
        ("sweep", escape(sweep.name)),
        ("model", escape(sweep.common("model"))),
        ("dataset", escape(sweep.common("dataset"))),
        ("store", escape(str(sweep.store))),
        ("last run finished", escape(max(finished)) if finished else "-"),
        ("runs", f"{len(sweep.runs)} ({escape(status)})"),
        ("failed runs", failed_html),
    ]


def build_report(
    store_path: str | Path,
    out_dir: str | Path,
    options: ReportOptions | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of one sweep into ``out_dir`` (created if needed) and return its files.

    Tables: ``accuracy_density``, ``efficiency_score``, ``table_i_comparison`` (CNN5's study),
    ``points``, ``runs``, ``modulation_comparison`` for AMC-1D sweeps; where published figures
    exist for the sweep's model and dataset (``published/literature_*.yaml``), ``literature``
    takes Table I's place
    (.md, .csv, .json each). Plots (.png and .svg): see docs/report.md. ``index.html`` embeds
    every plot. ReportError for a missing/empty store, an unknown sweep or layer, or missing
    matplotlib (unless ``options.plots`` is False); plots the data cannot support yet (no
    finished run, no .pqz file) are left out and listed in ``ReportResult.skipped``.
    """
    options = options or ReportOptions()
    say = log or (lambda _msg: None)
    if options.plots:
        plots.require_matplotlib()
    sweep = read_sweep(store_path, options.sweep)
    grid = build_grid(sweep)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"output path '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    made = [
        tables.accuracy_table(grid),
        tables.efficiency_table(grid, options.rhos),
        tables.table_i_comparison(grid, sweep, options.rhos),
        tables.points_table(sweep),
        tables.runs_table(sweep),
    ]
    if sweep.common("model") == reference.MODULATION_MODEL:
        made.insert(3, tables.modulation_comparison(grid, sweep))
    literature = reference.literature(sweep.common("model"), sweep.common("dataset"))
    if literature is not None:  # its own model's published figures replace CNN5's Table I
        made[2] = tables.literature_table(sweep, literature)
    table_files = {t.name: t.write(out) for t in made}
    say(f"wrote {len(made)} tables (Markdown, CSV, JSON)")

    plot_files: dict[str, list[Path]] = {}
    skipped: list[str] = []
    rendered: list[html.Plot] = []
    if options.plots:
        with plots.style():
            for name, job in _plot_jobs(sweep, grid, options, out):
                try:
                    files = job()
                except PlotSkipped as exc:
                    skipped.append(str(exc))
                    say(f"left out: {exc}")
                    continue
                plot_files[name] = files
                title, caption = PLOT_TEXT[name]
                rendered.append(html.Plot(name, title, caption, tuple(files)))
        say(f"drew {len(plot_files)} plots (PNG, SVG)")
    else:
        skipped.append("plots were not requested (--no-plots)")

    index = out / "index.html"
    write_text_atomic(
        index, html.render(f"Sweep report: {sweep.name}", _meta(sweep), made, rendered, skipped)
    )
    return ReportResult(
        out_dir=out,
        index_html=index,
        sweep=sweep.name,
        runs=len(sweep.runs),
        tables=table_files,
        plots=plot_files,
        skipped=tuple(skipped),
    )
