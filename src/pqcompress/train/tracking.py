"""Best-epoch bookkeeping (docs/method.md §5: highest test accuracy, or validation) and early stopping."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class BestTracker:
    """Tracks the best epoch and the early-stopping counter.

    The best epoch is the one with the highest validation accuracy (``best_on="val"``, the
    default: the test split is measured, never chosen on; test accuracy when the data has no
    validation split) or test accuracy (``best_on="test"``, the studies' protocol,
    docs/method.md §5, kept to reproduce them); ties keep the earlier epoch.
    Early stopping watches ``monitor`` ("val_acc", or "test_acc" when there is no validation
    split): an epoch that does not strictly raise it increments ``bad_epochs``; training stops
    once ``bad_epochs`` reaches ``patience`` (0 disables early stopping).
    """

    patience: int = 0
    monitor: str = "val_acc"
    best_on: str = "val"
    best_score: float = -1.0
    best_epoch: int = 0
    best_test_acc: float = -1.0
    train_acc_at_best: float = float("nan")
    density_at_best: float = float("nan")
    val_acc_at_best: float | None = None
    test_report_at_best: dict[str, Any] | None = None
    best_val_acc: float | None = None
    best_val_epoch: int | None = None
    best_monitored: float = -1.0
    bad_epochs: int = 0

    def update(self, row: dict[str, Any], test_report: dict[str, Any] | None = None) -> bool:
        """Record one epoch's metrics row; return True when it is the new best epoch."""
        epoch = int(row["epoch"])
        val_acc = row.get("val_acc")
        if val_acc is not None and (self.best_val_acc is None or val_acc > self.best_val_acc):
            self.best_val_acc, self.best_val_epoch = float(val_acc), epoch
        monitored = row[self.monitor]
        if monitored > self.best_monitored:
            self.best_monitored, self.bad_epochs = float(monitored), 0
        else:
            self.bad_epochs += 1
        key = "val_acc" if self.best_on == "val" and val_acc is not None else "test_acc"
        is_best = row[key] > self.best_score
        if is_best:
            self.best_score = float(row[key])
            self.best_epoch = epoch
            self.best_test_acc = float(row["test_acc"])
            self.train_acc_at_best = float(row["train_acc"])
            self.density_at_best = float(row["density"])
            self.val_acc_at_best = None if val_acc is None else float(val_acc)
            self.test_report_at_best = test_report
        return is_best

    @property
    def selection(self) -> str:
        """What chose the best epoch: "val", or "test" (asked for, or no validation split)."""
        return "val" if self.best_on == "val" and self.best_val_epoch is not None else "test"

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if hasattr(self, key) and key not in ("patience", "monitor", "best_on"):
                setattr(self, key, value)
        if "best_score" not in state:  # checkpoints from before best_on chose on test accuracy
            self.best_score = float(state.get("best_test_acc", -1.0))
