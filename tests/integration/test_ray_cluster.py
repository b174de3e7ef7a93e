"""Search and sweep on a real Ray cluster: a head started as its own process on 127.0.0.1
(`ray start --head`), joined with --ray-address the way a user's cluster is addressed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAY = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
# a token file left by an earlier local ray.init turns token auth on for `ray start`; the test
# cluster runs without it (what a client of a token cluster sets is in docs/sweep.md)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    if not Path(RAY).exists():
        pytest.skip("the ray command is not installed")
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    start = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    out = subprocess.run(start, env=ENV, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=120)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pqcompress.cli.main", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pqcompress.testing.runs import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("run") / "run")


@pytest.mark.requires("ray")
def test_search_on_the_cluster(head: str, tiny_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("pymoo")  # the search's hypervolume (the sweep test needs no pymoo)
    from pqcompress.testing.runs import tiny_search_spec as spec_dict

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            spec_dict(tiny_run, name="onray", budget=6, initial=4, algorithms=["random"])
        )
    )
    out = _cli(
        "search",
        str(spec),
        "--store",
        str(tmp_path / "r.db"),
        "--executor",
        "ray",
        "--ray-address",
        head,
        "--workers",
        "2",
        "--out",
        str(tmp_path / "out"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    entries = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert entries[0]["evaluations"] == 6


@pytest.mark.requires("ray")
def test_sweep_on_the_cluster(head: str, tmp_path: Path) -> None:
    spec = {
        "model": "cnn5",
        "model_args": {"width": 0.25},
        "dataset": "digits",
        "data": {"subset": 200},
        "train": {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 3},
        "grid": {"alpha": [0.0, 0.5]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = _cli(
        "sweep",
        str(path),
        "--store",
        str(tmp_path / "r.db"),
        "--executor",
        "ray",
        "--ray-address",
        head,
        "--workers",
        "2",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import sqlite3

    with sqlite3.connect(tmp_path / "r.db") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM runs")]
    assert statuses == ["completed", "completed"]
