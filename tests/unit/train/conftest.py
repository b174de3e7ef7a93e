"""Fixtures for the training-loop tests (helpers live in train_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from train_support import FakeCompressor, make_trainer

from pqcompress.train import trainer


@pytest.fixture(autouse=True)
def _restore_threads():
    """Trainer sets torch's thread count process-wide (train.threads); put it back after a test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_compressor(monkeypatch: pytest.MonkeyPatch) -> type[FakeCompressor]:
    monkeypatch.setattr(trainer, "build_compressor", FakeCompressor)
    return FakeCompressor


@pytest.fixture
def run_trainer():
    """``run_trainer(out_dir, epochs=..., **train_kwargs)`` -> (Trainer, RunResult)."""

    def run(out_dir: Path | None, **kwargs: Any):
        t = make_trainer(out_dir, **kwargs)
        return t, t.fit()

    return run
