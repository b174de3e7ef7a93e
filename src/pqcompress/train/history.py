"""metrics.jsonl: one JSON object per finished epoch, appended with fsync, truncated on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pqcompress.atomic import append_line_synced, write_text_atomic
from pqcompress.errors import CheckpointError

# Keys of every metrics.jsonl line, in this order. Accuracies are fractions in [0, 1],
# losses mean cross-entropy per sample, times wall-clock seconds, epochs 1-based.
#   epoch            1-based epoch number
#   lr               learning rate used during the epoch
#   train_loss/acc   train_metric "running": means over the epoch's steps, each batch scored
#                    by the weights it was trained with (train mode, like Keras); "full": a
#                    clean eval-mode pass over the (un-augmented) train split after the epoch
#   train_metric     "running" or "full"
#   val_loss/acc     on the validation split after the epoch; null without one
#   test_loss/acc    on the test split after the epoch
#   test_macro_f1    unweighted mean F1 over classes on the test split
#   density          nonzero fraction of the compressed tensors (Compressor.density()),
#                    or of all conv/linear weights when there is no compressor
#   steps, samples   optimizer steps and training samples of the epoch
#   epoch_time_s     training + epoch_end + evaluation (checkpoint writing excluded)
#   train_time_s     the step loop, compressor.step() included
#   compress_time_s  inside compressor.step() and compressor.epoch_end() (0 without one)
#   eval_time_s      the evaluation passes (and density)
#   is_best          this epoch is the best so far by the run's selection, train.best_on:
#                    the highest validation accuracy (default) or test accuracy (ties keep
#                    the first)
#   best_epoch, best_test_acc   the best epoch so far and its test accuracy
EPOCH_KEYS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "train_metric",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "test_macro_f1",
    "density",
    "steps",
    "samples",
    "epoch_time_s",
    "train_time_s",
    "compress_time_s",
    "eval_time_s",
    "is_best",
    "best_epoch",
    "best_test_acc",
)


class MetricsLog:
    """Per-epoch history kept in memory and, when ``path`` is set, mirrored to a JSONL file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.path is not None:
            append_line_synced(self.path, json.dumps(row, allow_nan=True))

    def restore(self, epochs: int) -> None:
        """Keep the first ``epochs`` lines of the file and rewrite it without any later or torn
        line (CheckpointError when fewer survive); see :meth:`reconcile` and :meth:`commit`."""
        rows, _ = self.reconcile(epochs, None)
        self.commit(rows)

    def file_rows(self) -> list[dict[str, Any]]:
        """The file's complete lines in epoch order (1, 2, ...), up to the first torn or
        out-of-order one; nothing is changed."""
        return self._scan()[0]

    def _scan(self) -> tuple[list[dict[str, Any]], int]:
        """One read of the file: its complete lines in epoch order, and how many non-empty
        lines it holds in all."""
        rows: list[dict[str, Any]] = []
        if self.path is None or not self.path.is_file():
            return rows, 0
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(row, dict) or row.get("epoch") != len(rows) + 1:
                break
            rows.append(row)
        return rows, sum(1 for line in lines if line)

    def reconcile(
        self, epochs: int, saved: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The rows a run resumed at ``epochs`` finished epochs continues with, and a note when
        the file disagrees with its checkpoint; nothing is written.

        ``saved`` is the history the checkpoint holds (checkpoints written since the
        checkpoint came first and the metrics line second): it wins, so lines written after the
        last checkpoint are dropped and lines a stop cut off before they were written are
        restored. Without it (older checkpoints) the file must hold ``epochs`` complete lines,
        else CheckpointError.
        """
        on_file, total = self._scan()
        if saved is not None and len(saved) == epochs:
            rows = [dict(r) for r in saved]
        else:
            if len(on_file) < epochs:
                raise CheckpointError(
                    f"'{self.path}' holds {len(on_file)} complete epoch line(s) but the "
                    f"checkpoint is at epoch {epochs}; the run directory is inconsistent"
                )
            rows = on_file[:epochs]
        note = None
        if total > epochs:
            note = (
                f"note: {self.path} held {total} line(s) but the checkpoint is at epoch {epochs}; "
                f"the line(s) after it were written after the last checkpoint and are dropped"
            )
        elif len(on_file) < epochs:
            note = (
                f"note: {self.path} lacked the line(s) of epoch(s) {len(on_file) + 1}..{epochs}; "
                "restored from the checkpoint"
            )
        return rows, note

    def commit(self, rows: list[dict[str, Any]]) -> None:
        """Take ``rows`` as the history and rewrite the file with exactly them (atomically)."""
        self.rows = list(rows)
        if self.path is not None:
            text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in self.rows)
            write_text_atomic(self.path, text)

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}
