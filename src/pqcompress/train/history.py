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
#   is_best          this epoch has the highest test accuracy so far (ties keep the first)
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
        """Load the first ``epochs`` lines and rewrite the file without any later or torn line.

        A line that does not parse (half-written at a crash) or belongs to an epoch after the
        checkpoint is dropped. Raises CheckpointError when fewer than ``epochs`` lines survive.
        """
        rows: list[dict[str, Any]] = []
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if len(rows) == epochs:
                    break
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                if not isinstance(row, dict) or row.get("epoch") != len(rows) + 1:
                    break
                rows.append(row)
        if len(rows) < epochs:
            raise CheckpointError(
                f"'{self.path}' holds {len(rows)} complete epoch line(s) but the checkpoint is at "
                f"epoch {epochs}; the run directory is inconsistent"
            )
        self.rows = rows
        if self.path is not None:
            text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows)
            write_text_atomic(self.path, text)

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}
