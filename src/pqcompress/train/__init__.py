"""Training loop: Trainer, train() and RunResult (checkpoints, resume, best epoch, early stopping)."""

from pqcompress.train.result import RunResult
from pqcompress.train.trainer import Trainer, train

__all__ = ["RunResult", "Trainer", "train"]
