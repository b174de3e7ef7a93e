"""Sweep faults: two sweep processes on one store, a store locked past its timeout or on a
full disk, names that would escape --runs-dir, a point stopped before its first checkpoint."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_support import tiny_spec, write_spec

from pqcompress import faults
from pqcompress.errors import ConfigError
from pqcompress.execute import local as local_executor
from pqcompress.results import StoreError
from pqcompress.results import db as storedb
from pqcompress.sweep import ResultsStore, SweepSpec, run_sweep

pytestmark = pytest.mark.slow


def _metrics_epochs(run_dir: str) -> list[int]:
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def _sweep_cli(spec: Path, store: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pqcompress", "sweep", str(spec), "--store", str(store)),
            *("--executor", "inline", "--no-progress"),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_sweep_processes_on_one_store_run_every_point_exactly_once(tmp_path):
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec())
    store, hold = tmp_path / "r.db", tmp_path / "hold"
    points = SweepSpec.from_yaml(spec).points()
    first_id = points[0].run_id
    hold.touch()  # the first process pauses inside point 0 (checkpoint of epoch 1 written)
    first = _sweep_cli(spec, store, {faults.ENV: faults.spec("epoch", f"{first_id}@1", hold)})
    held = tmp_path / "r_runs" / "tiny" / first_id / ".held"
    deadline = time.monotonic() + 180
    while not held.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = _sweep_cli(spec, store)
    _, err2 = second.communicate(timeout=300)
    assert second.returncode == 0, err2
    assert f"left to another sweep process running them (pid {first.pid}" in err2
    hold.unlink()
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    with ResultsStore(store) as db:
        rows = db.runs(sweep="tiny")
    assert len(rows) == len(points)
    assert {r["status"] for r in rows} == {"completed"}
    assert [r["attempts"] for r in rows] == [1] * len(points)
    for r in rows:
        assert _metrics_epochs(r["run_dir"]) == [1, 2], r["run_id"]


def test_a_store_locked_past_its_timeout_is_one_error_and_the_rerun_finishes(tmp_path, monkeypatch):
    """Another connection takes the store's write lock while a point trains and holds it past
    the busy timeout: one StoreError line; the finished point is picked up by the rerun,
    and nothing is left 'running'."""
    monkeypatch.setattr(storedb, "BUSY_TIMEOUT_S", 0.3)
    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0, 0.5]}))
    db_path = tmp_path / "r.db"
    blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    real = local_executor.InlineExecutor.run

    def run(self, tasks, on_start, on_result):
        def locked_result(i, outcome):
            blocker.execute("BEGIN IMMEDIATE")  # held until the test commits it
            on_result(i, outcome)

        return real(self, tasks, on_start, locked_result)

    monkeypatch.setattr(local_executor.InlineExecutor, "run", run)
    with pytest.raises(StoreError) as info:
        run_sweep(spec, db_path, executor="inline", progress=False)
    message = str(info.value)
    assert "\n" not in message and "write lock" in message and str(db_path) in message
    blocker.execute("COMMIT")
    blocker.close()
    monkeypatch.undo()
    with ResultsStore(db_path) as db:
        assert [r["status"] for r in db.runs(sweep="tiny")] == ["running", "pending"]
    summary = run_sweep(spec, db_path, executor="inline", progress=False)
    assert summary.ok
    with ResultsStore(db_path) as db:
        rows = db.runs(sweep="tiny")
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert _metrics_epochs(rows[0]["run_dir"]) == [1, 2]  # picked up, not trained again


def test_a_store_on_a_full_disk_is_one_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        spec = SweepSpec.from_dict(tiny_spec())
        db_path = mnt / "r.db"
        with ResultsStore(db_path):
            pass
        (mnt / "filler").write_bytes(b"\0" * (os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize))
        with pytest.raises(StoreError) as info:
            run_sweep(spec, db_path, executor="inline", runs_dir=tmp_path / "runs", progress=False)
        assert "\n" not in str(info.value) and "disk is full" in str(info.value)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("name", ["../../../x", "/abs/x", "..", "a/b", "~x", ""])
def test_a_sweep_name_must_be_one_path_component(tmp_path, name):
    spec = tiny_spec(name=name)
    if name == "":
        spec = tiny_spec(name="ok/../..")
    with pytest.raises(ConfigError, match="sweep name"):
        SweepSpec.from_dict(spec)
    assert list(tmp_path.iterdir()) == []


def test_a_point_stopped_between_checkpoint_and_metrics_is_retried(tmp_path, monkeypatch):
    """The state that used to fail on every rerun: the point's epoch-1 checkpoint is written,
    its metrics line is not, and the sweep dies (here: the worker raises SystemExit there)."""
    from pqcompress.train.history import MetricsLog

    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0]}))
    db_path = tmp_path / "r.db"
    real_append = MetricsLog.append

    def dying_append(self, row):
        raise SystemExit(1)

    monkeypatch.setattr(MetricsLog, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):  # the inline executor stops the sweep there
        run_sweep(spec, db_path, executor="inline", progress=False)
    with ResultsStore(db_path) as db:
        [row] = db.runs(sweep="tiny")
    assert row["status"] == "interrupted"
    assert not Path(row["run_dir"], "metrics.jsonl").read_text()  # no line; a checkpoint
    monkeypatch.setattr(MetricsLog, "append", real_append)
    again = run_sweep(spec, db_path, executor="inline", progress=False)
    assert again.ok and [r["status"] for r in again.rows] == ["completed"]
    assert _metrics_epochs(again.rows[0]["run_dir"]) == [1, 2]


def test_claims_are_released_when_the_sweep_ends(tmp_path):
    from pqcompress import dirlock

    spec = SweepSpec.from_dict(tiny_spec(grid={"alpha": [0.0]}))
    summary = run_sweep(spec, tmp_path / "r.db", executor="inline", progress=False)
    run_dir = summary.rows[0]["run_dir"]
    assert dirlock.holder(run_dir, dirlock.POINT_CLAIM) is None
    assert dirlock.holder(run_dir, dirlock.RUN_LOCK) is None
    dirlock.acquire(run_dir, dirlock.POINT_CLAIM)  # this process's own claim counts as held
    try:
        assert dirlock.holder(run_dir, dirlock.POINT_CLAIM) is not None
    finally:
        dirlock.release(run_dir, dirlock.POINT_CLAIM)
