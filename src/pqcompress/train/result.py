"""RunResult: the outcome of one training run, as returned by ``train`` and stored in result.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

Status = Literal["completed", "early_stopped", "interrupted"]
FINISHED: tuple[Status, ...] = ("completed", "early_stopped")
"""The statuses of a run that is done: a rerun picks it up instead of training."""


@dataclass
class RunResult:
    """Summary of a run. Accuracies are fractions in [0, 1]; epochs are 1-based (0 = none yet).

    ``best_*`` follow docs/method.md §5: the best epoch is the one with the highest validation
    accuracy (``train.best_on: val``, the default) or test accuracy (``best_on: test``, the
    studies' protocol), earliest on ties; ``selection`` says which one chose it ("test" too when
    the data had no validation split). ``best_test_acc``, train accuracy, density and the test
    report are taken at that epoch; ``test_acc_at_last`` is the last epoch's test accuracy.
    ``final`` is the last epoch's metrics line; ``post`` holds the metrics of the model
    compressed after training (``schedule="post"``), else None. ``model`` is the trained
    module itself (in memory only; not written to result.json).

    status: "completed" (all epochs), "early_stopped" (patience ran out) or "interrupted"
    (Ctrl-C; ``epochs_run`` epochs are checkpointed and the run can be resumed). Before the
    first epoch finishes, ``best_epoch`` is 0 and the ``*_at_best`` numbers are None.
    ``early_stop_metric`` is "val_acc", or "test_acc" when the data has no validation split.
    ``wall_time_s`` sums the sessions of a resumed run. ``history`` is every metrics.jsonl line.
    """

    status: Status
    epochs_run: int
    best_epoch: int
    best_test_acc: float | None
    train_acc_at_best: float | None
    density_at_best: float | None
    val_acc_at_best: float | None
    best_val_acc: float | None
    best_val_epoch: int | None
    early_stop_metric: str
    final: dict[str, Any]
    post: dict[str, Any] | None
    wall_time_s: float
    out_dir: str | None
    compressor_stats: list[dict[str, Any]] = field(default_factory=list)
    test_report_at_best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    selection: str = "val"
    test_acc_at_last: float | None = None
    channel_groups: list[dict[str, Any]] = field(default_factory=list)
    channels: dict[str, Any] | None = None  # granularity channel: MACs before/after, shares
    amp: str = "off"  # the mixed precision the run trained under (train.amp, auto resolved)
    # where it trained (its last session): {"device", "cpu", "threads"}, so times compare
    machine: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field except ``model``."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of ``to_dict``; unknown keys (from newer versions) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)} - {"model"}
        return cls(**{k: v for k, v in data.items() if k in names})
