"""Human-readable summaries of a run for the terminal (rich tables)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when a table is drawn: the serving image has no rich
    from rich.console import Console
    from rich.table import Table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def make_console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is redirected."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def layer_table(stats: list[dict[str, Any]], title: str = "compressed tensors") -> Table:
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "tensor",
        "form",
        "alpha",  # the alpha of the latest application (ramped or solved), else the setting
        "bits",
        "numel",
        "sparsity",
        "levels",
        "threshold",
        "scale",
    ):
        table.add_column(col, justify="left" if col in ("tensor", "form") else "right")
    for s in stats:
        table.add_row(
            s["name"],
            s["kind"],
            f"{s['applied_alpha'] if s.get('applied_alpha') is not None else s['alpha']:.4g}",
            str(s["bits"]),
            f"{s['numel']:,}",
            _pct(s["sparsity"]),
            "-" if s.get("levels") is None else str(s["levels"]),
            "-" if s.get("threshold") is None else f"{s['threshold']:.4g}",
            "-" if s.get("scale") is None else f"{s['scale']:.4g}",
        )
    return table


def print_result(result: Any, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(
        f"[bold]{result.status}[/bold] after {result.epochs_run} epoch(s) in {result.wall_time_s:.1f}s; "
        f"best epoch {result.best_epoch} (chosen on {getattr(result, 'selection', 'test')}): "
        f"test {_pct(result.best_test_acc)}, train {_pct(result.train_acc_at_best)}, "
        f"density {_pct(result.density_at_best)}; last epoch test "
        f"{_pct(getattr(result, 'test_acc_at_last', None))}"
    )
    if result.post:
        console.print(f"after post-training compression: test {_pct(result.post.get('test_acc'))}")
    if result.compressor_stats:
        console.print(layer_table(result.compressor_stats))
    channels = getattr(result, "channels", None)
    if channels:
        console.print(
            f"channels kept: {100 * channels['channel_share']:.1f}%; MACs per sample "
            f"{channels['macs_before'] / 1e6:.2f} M -> {channels['macs_after'] / 1e6:.2f} M "
            f"({100 * channels['mac_share']:.1f}%) once `pqcompress export --shrink` removes "
            "the pruned channels"
        )
    if result.out_dir:
        console.print(f"run directory: {result.out_dir}")
