"""Fixtures for the report tests: synthetic stores and two tiny real runs with .pqz files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from report_support import grid_rows, write_store


@pytest.fixture
def grid_store(tmp_path: Path) -> Path:
    """A finished 3 x 3 x 2-lr grid (see ``grid_rows``), no run directories."""
    return write_store(tmp_path / "results.db", grid_rows())


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories + .pqz of an uncompressed and a 4-bit alpha-0.75 (latent) student_cnn
    trained for 2 x 3 steps on digits."""
    from pqcompress.codec import export_run
    from pqcompress.config import ExperimentConfig
    from pqcompress.train.trainer import train

    root = tmp_path_factory.mktemp("report_runs")
    threads = torch.get_num_threads()
    out = {}
    for name, comp in (("base", None), ("small", {"alpha": 0.75, "bits": 4})):
        cfg = ExperimentConfig.from_dict(
            {
                "model": "student_cnn",
                "dataset": "digits",
                "model_args": {"width": 0.5},
                "train": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 32, "threads": 1},
                "compression": comp,
            }
        )
        train(cfg, root / name, progress=False)
        export_run(root / name, root / name / "model.pqz")
        out[name] = root / name
    torch.set_num_threads(threads)
    return out
