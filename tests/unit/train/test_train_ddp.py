"""Training on two processes (torchrun, gloo): the same weights on every rank, one writer,
and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pqcompress.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.integration]
HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def _cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pqcompress", "train", "--model", "cnn5", "--dataset", "digits",
            "--batch-size", "32", "--lr", "0.05", "--bits", "4", "--alpha", "0.5",
            "--set", "compression.rounding=stochastic", "--threads", "1", "--no-progress", *args]  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cli_cmd(*args), capture_output=True, text=True, timeout=600, env=ENV)


def test_two_ranks_end_with_the_same_weights_and_one_writer(tmp_path):
    """Ranks start from different random weights (DDP aligns them), train under P->Q with
    stochastic rounding, and end bit-identical (weights, BatchNorm statistics, latent
    residuals); rank 0 alone wrote the run directory."""
    done = _torchrun(str(HERE / "ddp_script.py"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [(tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert lines[0] == lines[1] and lines[0].split()[2] == "2"
    run = tmp_path / "run"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    assert done.stderr.count("epoch 2/2") == 1  # rank 0 speaks for the group


def test_nproc_resume_equals_an_uninterrupted_run(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    for args in (["--epochs", "2", "-o", str(whole)], ["--epochs", "1", "-o", str(part)],
                 ["--resume", "--epochs", "2", "-o", str(part)]):  # fmt: skip
        done = _cli("--nproc", "2", *args)
        assert done.returncode == 0, done.stderr[-3000:]
    a = torch.load(whole / "checkpoint.pt", weights_only=False)
    b = torch.load(part / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_acc"] for r in rows] == [r["test_acc"] for r in ref]
    from pqcompress.config import DataConfig
    from pqcompress.data.registry import build_dataset

    n = len(build_dataset("digits", DataConfig()).train)
    assert rows[0]["samples"] == ref[0]["samples"] == n - n % 2  # each sample once, shards even


def test_refusals_come_before_any_process_starts(tmp_path, monkeypatch, capsys):
    assert main(["train", "--model", "cnn5", "--dataset", "digits", "--batch-size", "33",
                 "--nproc", "2", "-o", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "must divide evenly over 2 processes" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun, without a run directory named
    assert main(["train", "--model", "cnn5", "--dataset", "digits"]) == 2
    assert "name the run directory with --out" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_rank_killed_with_sigkill_is_one_error_and_the_run_resumes(tmp_path):
    import signal
    import time

    from pqcompress import faults
    from pqcompress.proctree import process_tree

    run, gate = tmp_path / "run", tmp_path / "gate"
    gate.write_text("")
    env = {**ENV, faults.ENV: faults.spec("epoch", "run@1", gate)}
    cmd = _cli_cmd("--epochs", "3", "--nproc", "2", "-o", str(run))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / ".held").exists():  # rank 0 holds after epoch 1's checkpoint
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        ranks = {pid: _rank_of(pid) for pid in process_tree(proc.pid)}
        # rank 0 stays held: torchrun sees rank 1 die first, then stops rank 0
        os.kill(next(pid for pid, rank in ranks.items() if rank == 1), signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        gate.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert "training process 1 of 2 was killed by SIGKILL" in err and "--resume" in err
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 1
    done = _cli("--nproc", "2", "--resume", "--epochs", "3", "-o", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
