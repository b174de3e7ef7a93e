"""`pqcompress sweep` end to end: kill -9 mid-sweep (workers die with it), rerun resumes and completes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pqcompress import faults
from pqcompress.cli.main import main
from pqcompress.sweep import SweepSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = {
    "model": "cnn5",
    "model_args": {"width": 0.25},
    "dataset": "digits",
    "data": {"subset": 400},
    "train": {"epochs": 4, "batch_size": 32, "lr": 0.05, "max_steps_per_epoch": 6},
    "grid": {"alpha": [0.0, 0.5]},
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _rows(db: Path) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(
                "SELECT run_id, status, attempts, run_dir FROM runs ORDER BY point_index"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(x) for x in text.split()]
    return kids + [g for k in kids for g in _children(k)]  # workers are the fork server's


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_then_rerun_completes_without_retraining(tmp_path: Path) -> None:
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    db = tmp_path / "results.db"
    # the second point holds after its second epoch's checkpoint (the trainer's test-only
    # pause point) until we have killed the driver: no race with the point finishing
    second = SweepSpec.from_yaml(spec).points()[1].run_id
    hold = tmp_path / "hold"
    hold.write_text("hold", encoding="utf-8")
    env = {**ENV, faults.ENV: faults.spec("epoch", f"{second}@2", hold)}
    cmd = [sys.executable, "-m", "pqcompress.cli.main", "sweep", str(spec), "--store", str(db),
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = None
    deadline = time.monotonic() + 240  # a bound on a hang, not a timing assumption
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            rows = _rows(db)
            running = [r for r in rows if r[0] == second and r[1] == "running"]
            if running and Path(running[0][3], ".held").is_file():
                victim = running[0]
                break
            time.sleep(0.1)
        assert victim is not None, f"sweep never reached the pause point: {_rows(db)}"
        assert [r[1] for r in _rows(db)] == ["completed", "running"]
        workers = _children(proc.pid)
        assert workers, "the local executor should train in a worker process"
        proc.send_signal(signal.SIGKILL)  # the driver only: its workers must follow
        proc.wait(timeout=10)
        gone_by = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "worker outlived the killed driver"
    finally:
        if proc.poll() is None:
            proc.kill()
        hold.unlink(missing_ok=True)
    before = {r[0]: r for r in _rows(db)}
    finished = {rid: Path(r[3], "metrics.jsonl").stat().st_mtime_ns
                for rid, r in before.items() if r[1] == "completed"}  # fmt: skip

    assert main(["sweep", str(spec), "--store", str(db), "--no-progress"]) == 0
    after = {r[0]: r for r in _rows(db)}
    assert [r[1] for r in after.values()] == ["completed"] * 2
    for rid, mtime in finished.items():
        assert after[rid][2] == 1
        assert Path(after[rid][3], "metrics.jsonl").stat().st_mtime_ns == mtime
    assert after[victim[0]][2] == 2
    log = Path(victim[3], "sweep.log").read_text(encoding="utf-8")
    resumed_session = log.split("--- ")[-1]
    assert "epoch 1/4" not in resumed_session and "epoch 2/4" not in resumed_session
    assert "epoch 3/4" in resumed_session and "epoch 4/4" in resumed_session
    lines = Path(victim[3], "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
