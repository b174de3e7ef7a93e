"""Progress display: a rich bar on a terminal, otherwise one concise log line per epoch on stderr."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pqcompress.progressbar import rich_bar


def format_epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One-line summary of a metrics.jsonl row, e.g. for logs of non-interactive runs."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}",
    ]
    if row.get("val_acc") is not None:
        parts.append(f"val acc {row['val_acc']:.2%}")
    parts += [
        f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.2%}",
        f"best {row['best_test_acc']:.2%} @{row['best_epoch']}",
        f"density {row['density']:.2%}",
        f"lr {row['lr']:.3g}",
        f"{row['epoch_time_s']:.1f}s (compress {row['compress_time_s']:.2f}s)",
    ]
    return " | ".join(parts)


class EpochProgress:
    """Shows training progress; use as a context manager around the epoch loop.

    ``enabled`` and an interactive stdout give rich progress bars (epochs of the run and
    steps of the current epoch, each with its ETA; running loss and accuracy) with a summary
    line per epoch; otherwise each
    epoch prints one summary line to ``stream`` (stderr by default).
    """

    def __init__(self, enabled: bool, epochs: int, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._task: Any = None
        self._run_task: Any = None
        self.interactive = enabled and sys.stdout.isatty()

    def __enter__(self) -> EpochProgress:
        if self.interactive:
            self._bar = rich_bar("stats")
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def start_epoch(self, epoch: int, total_steps: int) -> None:
        """``epoch`` is 1-based."""
        if self._bar is None:
            return
        description = f"epoch {epoch}/{self.epochs}"
        if self._run_task is None:  # whole-run bar: its ETA covers the remaining epochs
            self._run_task = self._bar.add_task(
                "run", total=self.epochs, completed=epoch - 1, stats=""
            )
        if self._task is None:
            self._task = self._bar.add_task(description, total=total_steps, stats="")
        else:
            self._bar.reset(self._task, total=total_steps, description=description, stats="")

    def on_step(self, step: int, total: int, loss: float, acc: float) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=step, stats=f"loss {loss:.4f} acc {acc:.2%}")

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self._bar is not None and self._run_task is not None:
            self._bar.advance(self._run_task)
        self.message(format_epoch_line(row, self.epochs))

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)
