"""The report's plots (matplotlib, drawn on Agg figures without pyplot), each saved as PNG + SVG."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pqcompress.atomic import atomic_write
from pqcompress.report.errors import MissingDependencyError, PlotSkipped
from pqcompress.report.grid import Grid, efficiency_scores
from pqcompress.report.settings import group_settings, settings_front
from pqcompress.report.store import Run, Sweep
from pqcompress.report.weights import LayerWeights

DPI = 120
MAX_CURVES = 30  # small multiples: at most this many runs (the cells' best runs first)
BASE_COLOR = "#555555"
DENSITY_COLOR = "#7b3294"  # runs that ask for a density (target_density)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


STYLE = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "svg.fonttype": "none",  # SVG text stays text (smaller, searchable)
}


def require_matplotlib() -> None:
    """MissingDependencyError (with the install command) when matplotlib is absent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the report's plots need matplotlib, which is not installed; "
            "install it with: pip install 'pqcompress[report]' (or pass --no-plots)"
        ) from None


@contextmanager
def style() -> Iterator[None]:
    """The plots' rcParams, set for the block only (the caller's settings are left alone)."""
    require_matplotlib()
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure bound to no GUI backend (no pyplot: headless, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, out_dir: Path, name: str) -> list[Path]:
    """``name``.png and ``name``.svg, byte for byte the same from the same data: no date in
    the metadata, and the SVG's element ids salted with the name instead of at random."""
    import matplotlib

    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    kinds = ({"dpi": DPI, "format": "png"}, {"format": "svg", "metadata": {"Date": None}})
    with matplotlib.rc_context({"svg.hashsalt": name}):
        for path, kw in zip(paths, kinds):
            buf = io.BytesIO()
            fig.savefig(buf, **kw)
            atomic_write(path, _writer(buf.getvalue()))  # replaced whole or left as it was
    return paths


def _writer(data: bytes) -> Any:
    return lambda fh: fh.write(data)


def alpha_colors(alphas: Sequence[float]) -> dict[float, Any]:
    """One color per alpha, the same in every plot (viridis, dark = no pruning)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    n = max(len(alphas) - 1, 1)
    return {a: cmap(0.9 * i / n) for i, a in enumerate(sorted(alphas))}


def _bits_axis(ax: Any, bits: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(bits))
    ax.set_xticklabels([str(b) for b in sorted(bits)])
    ax.minorticks_off()
    ax.set_xlabel("bits per weight (log scale)")


def _series(grid: Grid, value) -> dict[float, tuple[list[int], list[float]]]:
    out = {}
    for alpha in grid.alphas:
        xs, ys = [], []
        for bits in sorted(grid.bits):
            cell = grid.cell(alpha, bits)
            v = value(cell) if cell is not None and cell.best is not None else None
            if v is not None:
                xs.append(bits)
                ys.append(v)
        if xs:
            out[alpha] = (xs, ys)
    return out


def _need(series: dict, what: str) -> None:
    if not series:
        raise PlotSkipped(f"{what}: no finished run yet")


def _per_alpha(grid: Grid, value, what: str) -> tuple[Any, Any, dict]:
    """A figure with one line per pruning alpha of ``value(cell)`` against bits."""
    series = _series(grid, value)
    _need(series, what)
    colors = alpha_colors(grid.alphas)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for alpha, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", color=colors[alpha], label=f"{alpha:g}")
    return fig, ax, series


def _alpha_legend(ax: Any, series: dict) -> None:
    ax.legend(title="α", loc="best", ncols=2 if len(series) > 5 else 1)


def accuracy_vs_bits(grid: Grid, out_dir: Path) -> list[Path]:
    fig, ax, series = _per_alpha(
        grid, lambda c: None if c.acc is None else 100 * c.acc, "accuracy vs bits"
    )
    base = grid.baseline_acc
    if base is not None:
        ax.axhline(100 * base, color=BASE_COLOR, ls="--", lw=1, label=f"baseline {100 * base:.2f}%")
    _bits_axis(ax, grid.bits)
    ax.set_ylabel("test accuracy at best epoch (%)")
    ax.set_title("Test accuracy vs bits, per pruning α (mean over seeds)")
    _alpha_legend(ax, series)
    return _save(fig, out_dir, "accuracy_vs_bits")


def density_vs_bits(grid: Grid, out_dir: Path) -> list[Path]:
    fig, ax, series = _per_alpha(
        grid, lambda c: None if c.density is None else 100 * c.density, "density vs bits"
    )
    _bits_axis(ax, grid.bits)
    ax.set_yscale("log")
    values = [y for _, ys in series.values() for y in ys]
    lo, hi = min(values), max(values)
    ticks = [
        t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 50, 70, 100) if lo / 1.5 <= t <= hi * 1.5
    ]
    ax.set_yticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_ylabel("density at best epoch (% nonzero, log scale)")
    ax.set_title("Density vs bits, per pruning α")
    _alpha_legend(ax, series)
    return _save(fig, out_dir, "density_vs_bits")


def _score_matrix(grid: Grid, rhos: Sequence[float]) -> dict[float, np.ndarray]:
    scores = efficiency_scores(grid, rhos)
    if not scores:
        raise PlotSkipped(
            "efficiency score plots: no finished uncompressed baseline run (alpha 0, 32 bits)"
        )
    mats = {rho: np.full((len(grid.alphas), len(grid.bits)), np.nan) for rho in rhos}
    for s in scores:
        mats[s.rho][grid.alphas.index(s.alpha), grid.bits.index(s.bits)] = s.value
    return mats


def efficiency_heatmap(grid: Grid, rhos: Sequence[float], out_dir: Path) -> list[Path]:
    from matplotlib.colors import LogNorm

    mats = _score_matrix(grid, rhos)
    finite = np.concatenate([m[np.isfinite(m) & (m > 0)] for m in mats.values()])
    if finite.size == 0:
        raise PlotSkipped("efficiency heatmap: no finite positive score")
    lo, hi = float(finite.min()), float(finite.max())
    norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    width = 1.0 + len(rhos) * max(2.6, 0.55 * len(grid.bits) + 1.0)
    fig = _figure(width, 1.2 + 0.42 * len(grid.alphas) + 0.6)
    axes = fig.subplots(1, len(rhos), squeeze=False)[0]
    image = None
    for ax, rho in zip(axes, rhos):
        m = np.where(np.isfinite(mats[rho]), mats[rho], np.nan)
        image = ax.imshow(m, cmap="magma", norm=norm, aspect="auto")
        ax.set_xticks(range(len(grid.bits)), [str(b) for b in grid.bits])
        ax.set_yticks(range(len(grid.alphas)), [f"{a:g}" for a in grid.alphas])
        ax.grid(False)
        ax.set_xlabel("bits per weight")
        ax.set_title(f"ρ = {rho:g}")
        for (i, j), v in np.ndenumerate(mats[rho]):
            text = "–" if np.isnan(v) else ("inf" if math.isinf(v) else f"{v:.3g}")
            dark = np.isnan(v) or math.isinf(v) or norm(v) > 0.6
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="black" if dark else "white"
            )
    axes[0].set_ylabel("pruning α")
    fig.colorbar(image, ax=list(axes), label="efficiency score PE (log scale)", shrink=0.9)
    fig.suptitle("Efficiency score (PE > 1: worth it)")
    return _save(fig, out_dir, "efficiency_heatmap")


def efficiency_vs_bits(grid: Grid, rhos: Sequence[float], out_dir: Path) -> list[Path]:
    mats = _score_matrix(grid, rhos)
    colors = alpha_colors(grid.alphas)
    fig = _figure(3.3 * len(rhos) + 0.8, 3.8)
    axes = fig.subplots(1, len(rhos), squeeze=False, sharey=True)[0]
    for ax, rho in zip(axes, rhos):
        m = mats[rho]
        for i, alpha in enumerate(grid.alphas):
            pts = sorted(
                (b, m[i, j])
                for j, b in enumerate(grid.bits)
                if np.isfinite(m[i, j]) and m[i, j] > 0
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colors[alpha], label=f"{alpha:g}")
        ax.axhline(1.0, color=BASE_COLOR, ls="--", lw=1)
        ax.set_yscale("log")
        _bits_axis(ax, grid.bits)
        ax.set_title(f"ρ = {rho:g}")
    axes[0].set_ylabel("efficiency score PE (log scale)")
    axes[-1].legend(title="α", loc="best", fontsize=7)
    fig.suptitle("Efficiency score vs bits (dashed: PE = 1)")
    return _save(fig, out_dir, "efficiency_vs_bits")


def _curve_runs(grid: Grid, sweep: Sweep) -> list[Run]:
    runs = [r for r in sweep.runs if r.epochs]
    if len(runs) <= MAX_CURVES:
        return runs
    best = [c.best for c in grid.cells.values() if c.best is not None and c.best.epochs]
    return sorted(best, key=lambda r: r.point_index)[:MAX_CURVES]


def training_curves(grid: Grid, sweep: Sweep, out_dir: Path) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    runs = _curve_runs(grid, sweep)
    if not runs:
        raise PlotSkipped("accuracy per epoch: no run has finished an epoch yet")
    colors = alpha_colors(grid.alphas)
    ncols = min(4, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    fig = _figure(2.6 * ncols + 0.4, 2.1 * nrows + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for k, ax in enumerate(axes.flat):
        if k >= len(runs):
            ax.set_visible(False)
            continue
        run = runs[k]
        color = colors.get(round(run.alpha, 6), BASE_COLOR)
        ep = [e.epoch for e in run.epochs]
        test = [np.nan if e.test_acc is None else 100 * e.test_acc for e in run.epochs]
        train = [np.nan if e.train_acc is None else 100 * e.train_acc for e in run.epochs]
        dots = "o" if len(ep) <= 12 else None
        ax.plot(ep, test, color=color, lw=1.6, marker=dots, ms=3, label="test")
        ax.plot(ep, train, color=color, lw=1.2, ls="--", marker=dots, ms=3, label="train")
        if run.headline_epoch and run.headline_acc is not None:
            ax.plot(
                [run.headline_epoch],
                [100 * run.headline_acc],
                marker="*",
                ms=9,
                color="crimson",
                ls="none",
                label="best epoch",
            )
        status = "" if run.finished else f" [{run.status}]"
        ax.set_title(run.label() + status, fontsize=8)
        ax.set_ylim(0, 100)
        if len(ep) == 1:
            ax.set_xlim(ep[0] - 0.5, ep[0] + 0.5)
            ax.set_xticks(ep)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if k % ncols == 0:
            ax.set_ylabel("accuracy (%)")
        if k >= len(runs) - ncols:
            ax.set_xlabel("epoch")
    axes.flat[0].legend(loc="lower right", fontsize=7)
    title = "Test (solid) and train (dashed) accuracy per epoch; ★ best epoch"
    if len(runs) < len([r for r in sweep.runs if r.epochs]):
        title += f" (best run of each cell, first {len(runs)})"
    fig.suptitle(title)
    return _save(fig, out_dir, "accuracy_per_epoch")


def weight_histogram(lw: LayerWeights, out_dir: Path) -> list[Path]:
    fig = _figure(7.0, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    lo = float(min(lw.before.min(), lw.after.min()))
    hi = float(max(lw.before.max(), lw.after.max()))
    bins = np.linspace(lo, hi, 121)
    top.hist(lw.before, bins=bins, color="#4c72b0")
    top.set_title(f"before: float weights, from {lw.before_source}", fontsize=9)
    top.set_ylabel("count")
    levels, counts = np.unique(lw.after, return_counts=True)
    zero = float((lw.after == 0).mean())
    if len(levels) <= 300:
        width = (hi - lo) / 240 if hi > lo else 0.01
        bottom.bar(levels, counts, width=width, color="#dd8452")
    else:
        bottom.hist(lw.after, bins=bins, color="#dd8452")
    bottom.set_yscale("log")
    bits = f", {lw.bits} bits" if lw.bits else ""
    bottom.set_title(
        f"after: decoded from the .pqz ({lw.kind}{bits}): {len(levels)} distinct values, "
        f"{100 * zero:.1f}% zeros",
        fontsize=9,
    )
    bottom.set_ylabel("count (log scale)")
    bottom.set_xlabel("weight value")
    fig.suptitle(f"Weights of {lw.layer} ({lw.after.size:,} values), run {lw.run.label()}")
    return _save(fig, out_dir, "weight_histogram")


def confusion_matrices(panels: Sequence[tuple[str, Run]], out_dir: Path) -> list[Path]:
    usable = [(title, run, run.confusion) for title, run in panels if run.confusion]
    if not usable:
        raise PlotSkipped("confusion matrices: no finished run recorded a confusion matrix")
    n_classes = max(len(cm) for _, _, (cm, _) in usable)
    side = min(max(3.2, 0.38 * n_classes + 1.5), 7.5)
    fig = _figure(side * len(usable) + 0.9, side + 0.5)
    axes = fig.subplots(1, len(usable), squeeze=False)[0]
    image = None
    for ax, (title, run, (cm, names)) in zip(axes, usable):
        m = np.asarray(cm, dtype=float)
        rows = m.sum(axis=1, keepdims=True)
        share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ticks = range(len(names))
        ax.set_xticks(ticks, names, rotation=90 if max(map(len, names)) > 3 else 0)
        ax.set_yticks(ticks, names)
        ax.grid(False)
        if len(names) <= 12:
            for (i, j), v in np.ndenumerate(m):
                ax.text(
                    j,
                    i,
                    f"{int(v)}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        acc = "" if run.headline_acc is None else f", test acc {100 * run.headline_acc:.2f}%"
        ax.set_title(f"{title}\n{run.label()}{acc}", fontsize=9)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
    fig.colorbar(image, ax=list(axes), label="share of the true class (row)", shrink=0.8)
    fig.suptitle("Confusion matrices at the best epoch (numbers: counts)")
    return _save(fig, out_dir, "confusion_matrices")


def _axis_floor(accs: Sequence[float], span: float = 20.0) -> float:
    """The accuracy axis' lower limit: every point within ``span`` points of the best shows;
    points far below it (a collapsed run) are drawn on the axis edge with their value."""
    return max(min(accs), max(accs) - span) - 1.0


def size_vs_accuracy(grid: Grid, sweep: Sweep, out_dir: Path) -> list[Path]:
    """One point per setting at its mean .pqz bytes and mean accuracy (an error bar of one sd
    where there are several seeds, each seed a small hollow mark); the frontier over the
    settings, numbered by size and named in a key (the same frontier as the points table)."""
    from matplotlib.lines import Line2D

    settings = [s for s in group_settings(sweep) if s.pqz_bytes]
    if not settings:
        raise PlotSkipped("file size vs accuracy: no finished run has an exported .pqz file")
    colors = alpha_colors(grid.alphas)
    bits_order = sorted({s.first.bits for s in settings}, reverse=True)
    marker = {b: MARKERS[i % len(MARKERS)] for i, b in enumerate(bits_order)}
    pts = [(float(s.pqz_bytes or 0) / 1024, 100 * s.acc) for s in settings]
    floor = _axis_floor([y for _, y in pts])
    fig = _figure(7.6, 5.6)
    ax = fig.subplots()

    def color_of(r: Run) -> Any:
        if r.target_density is not None:
            return DENSITY_COLOR
        return colors.get(round(r.alpha, 6), BASE_COLOR)

    below = []
    for st, (x, y) in zip(settings, pts):
        c, m = color_of(st.first), marker[st.first.bits]
        if y < floor:
            below.append((st, x, y))
            ax.scatter(x, floor + 0.3, color=c, marker="v", s=36, zorder=3)
            ax.annotate(f"{st.first.short_label()}: {y:.2f}%", (x, floor + 0.3),
                        textcoords="offset points",
                        xytext=(5, -3), fontsize=7, color=c)  # fmt: skip
            continue
        if st.seeds > 1:
            for r in st.runs:
                if r.pqz_bytes and r.headline_acc is not None:
                    ax.scatter(r.pqz_bytes / 1024, 100 * r.headline_acc, s=14, marker=m,
                               facecolors="none", edgecolors=c, linewidths=0.7, zorder=2)  # fmt: skip
            ax.errorbar(x, y, yerr=100 * (st.acc_sd or 0.0), color=c, lw=0.8, capsize=2, zorder=2)
        ax.scatter(x, y, color=c, marker=m, s=40, zorder=3, edgecolors="white", linewidths=0.5)
    front = settings_front(settings)
    fx, fy = zip(*(pts[i] for i in front))
    ax.step(fx, fy, where="post", color="crimson", lw=1.2, zorder=1, label="frontier")
    ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="crimson", zorder=4)
    key = []
    for n, i in enumerate(front, start=1):
        ax.annotate(str(n), pts[i], textcoords="offset points", xytext=(-3, 8), fontsize=8,
                    color="crimson", fontweight="bold")  # fmt: skip
        st = settings[i]
        seeds = f", {st.seeds} seeds" if st.seeds > 1 else ""
        key.append(
            Line2D([], [], ls="none", marker=f"${n}$", color="crimson",
                   label=f"{'float32' if st.is_baseline else st.first.short_label()}: "
                   f"{pts[i][1]:.2f}%, "
                   f"{pts[i][0]:,.0f} KiB{seeds}")
        )  # fmt: skip
    f32 = [r.float32_bytes for st in settings for r in st.runs if r.float32_bytes]
    if f32:
        ax.axvline(max(f32) / 1024, color=BASE_COLOR, ls=":", lw=1, label="float32 dense size")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # plain numbers at 1, 2 and 5 per decade (not 6x10^1 on every minor tick)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.08)
    top = max(y for _, y in pts)
    ax.set_ylim(floor, top + 0.08 * (top - floor) + 0.5)
    ax.set_xlabel(".pqz file size (KiB, log scale; mean over seeds)")
    ax.set_ylabel("test accuracy at best epoch (%, mean over seeds)")
    ax.set_title("File size vs accuracy (top left is better)")
    if below:
        ax.text(0.99, 0.02, "▼ far below the axis: drawn on its edge", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color=BASE_COLOR)  # fmt: skip
    handles = [
        Line2D([], [], color=colors[a], marker="o", ls="none", label=f"α={a:g}")
        for a in grid.alphas
        if any(round(st.first.alpha, 6) == a and st.first.target_density is None
               for st in settings)
    ]  # fmt: skip
    if any(st.first.target_density is not None for st in settings):
        handles.append(
            Line2D([], [], color=DENSITY_COLOR, marker="o", ls="none", label="target density")
        )
    handles += [
        Line2D([], [], color="gray", marker=marker[b], ls="none", label=f"{b} bits")
        for b in bits_order
    ]
    handles += ax.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    fig.legend(handles=key, loc="outside lower center", fontsize=7, title="frontier (by size)",
               title_fontsize=7, ncols=1 if len(key) < 6 else 2)  # fmt: skip
    return _save(fig, out_dir, "size_vs_accuracy")
