"""A tiny trained model (student_cnn on digits, two epochs) shared by the search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pqcompress.testing.runs import train_tiny_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("search") / "run")
