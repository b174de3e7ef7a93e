"""Fixtures for the sweep tests (helpers live in sweep_support.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_threads():
    """Sweep workers set torch threads; put the suite's count back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
