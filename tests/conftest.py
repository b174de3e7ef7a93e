"""Suite-wide settings: one intra-op torch thread (small ops; avoids OpenMP spin contention);
the datasets beside the checkout (``../shared/datasets``) as $PQCOMPRESS_DATA_DIR unless set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not os.environ.get("PQCOMPRESS_DATA_DIR") and _SHARED.is_dir():
    os.environ["PQCOMPRESS_DATA_DIR"] = str(_SHARED)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(*modules): skip this test when one of the modules is not installed"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires("onnx", ...)``: skip only the test that needs a missing tool
    (before its fixtures run), never the whole module."""
    for mark in item.iter_markers(name="requires"):
        for module in mark.args:
            pytest.importorskip(module)
