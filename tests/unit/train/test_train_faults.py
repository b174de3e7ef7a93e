"""Faults at every save point of a run: a stop (Ctrl-C / SIGTERM) or a full disk inside each
write, two writers on one run directory, refused commands that must change nothing."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_support import make_trainer

from pqcompress import dirlock, faults
from pqcompress.checkpoint import load_checkpoint
from pqcompress.errors import BusyError, CheckpointError, StorageError
from pqcompress.train import trainer as trainer_module
from pqcompress.train.history import MetricsLog

TIMING_KEYS = {"epoch_time_s", "train_time_s", "compress_time_s", "eval_time_s"}


def deterministic(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_of(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 3-epoch run: what every interrupted and resumed run must equal."""
    out = tmp_path_factory.mktemp("straight") / "run"
    t = make_trainer(out, epochs=3)
    t.fit()
    return t, lines(out / "metrics.jsonl")


def assert_equals_straight(out: Path, resumed, straight) -> None:
    model, rows = straight[0].model, straight[1]
    assert deterministic(lines(out / "metrics.jsonl")) == deterministic(rows)
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


# The save points of an epoch, in order: best.pt, checkpoint.pt, the metrics line.
class Stop(Exception):
    pass


def _inject(monkeypatch, where: str, epoch: int, error: BaseException) -> None:
    """Raise ``error`` inside the write ``where`` of ``epoch`` (1-based)."""
    real_save = trainer_module.save_checkpoint
    real_append = MetricsLog.append

    def save(path, state):
        name = Path(path).name
        if state.get("epoch") == epoch and (
            (where == "best" and name == "best.pt")
            or (where == "checkpoint" and name == "checkpoint.pt")
        ):
            raise error
        return real_save(path, state)

    def append(self, row):
        if where == "metrics" and row["epoch"] == epoch:
            self.rows.append(row)
            raise error
        if where == "after-checkpoint" and row["epoch"] == epoch:
            raise error
        return real_append(self, row)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    monkeypatch.setattr(MetricsLog, "append", append)


SAVE_POINTS = ["best", "checkpoint", "after-checkpoint", "metrics"]


@pytest.mark.parametrize("where", SAVE_POINTS)
def test_a_stop_at_every_save_point_resumes_to_the_uninterrupted_run(
    tmp_path, monkeypatch, straight, where
):
    out = tmp_path / "run"
    _inject(monkeypatch, where, 2, KeyboardInterrupt())
    result = make_trainer(out, epochs=3).fit()
    assert result.status == "interrupted"
    saved = load_checkpoint(out / "checkpoint.pt")["epoch"]
    # the result and metrics.jsonl say what the checkpoint holds, whatever the stop cut off
    assert result.epochs_run == saved
    assert [r["epoch"] for r in lines(out / "metrics.jsonl")] == list(range(1, saved + 1))
    monkeypatch.undo()
    resumed = make_trainer(out, epochs=3, resume=True)
    assert resumed.fit().status == "completed"
    assert_equals_straight(out, resumed, straight)


def test_a_metrics_line_missing_after_its_checkpoint_is_restored_with_a_note(
    tmp_path, monkeypatch, straight, capsys
):
    """A process killed between the checkpoint and its metrics line (kill -9: no handler)."""
    out = tmp_path / "run"
    _inject(monkeypatch, "after-checkpoint", 2, Stop())
    with pytest.raises(Stop):
        make_trainer(out, epochs=3).fit()
    monkeypatch.undo()
    assert len(lines(out / "metrics.jsonl")) == 1
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    resumed = make_trainer(out, epochs=3, resume=True)
    assert resumed.fit().status == "completed"
    assert "restored from the checkpoint" in capsys.readouterr().err
    assert_equals_straight(out, resumed, straight)


def test_metrics_lines_beyond_the_checkpoint_are_dropped_with_a_note(tmp_path, straight, capsys):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    (out / "result.json").unlink()
    with open(out / "metrics.jsonl", "a") as fh:  # an epoch 3 whose checkpoint never landed
        fh.write(json.dumps({**lines(out / "metrics.jsonl")[-1], "epoch": 3}) + "\n")
    resumed = make_trainer(out, epochs=3, resume=True)
    assert resumed.fit().status == "completed"
    assert "dropped" in capsys.readouterr().err
    assert_equals_straight(out, resumed, straight)


def _enospc_after_half(monkeypatch, name: str, epoch: int) -> None:
    """torch.save writes half of ``name`` of ``epoch`` and then the disk is full."""
    real = torch.save

    def save(obj, fh, *args, **kwargs):
        if (
            isinstance(obj, dict)
            and obj.get("epoch") == epoch
            and Path(getattr(fh, "name", "")).name.startswith(name)
        ):
            fh.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, fh, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_at_the_checkpoint_is_one_line_and_keeps_the_last_one(
    tmp_path, monkeypatch, straight
):
    out = tmp_path / "run"
    _enospc_after_half(monkeypatch, "checkpoint.pt", 2)
    with pytest.raises(StorageError) as info:
        make_trainer(out, epochs=3).fit()
    message = str(info.value)
    assert "\n" not in message
    assert "checkpoint.pt" in message and "disk is full" in message
    assert "1 finished epoch(s) stay saved" in message and "--resume" in message
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1  # the earlier one, whole
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    monkeypatch.undo()
    resumed = make_trainer(out, epochs=3, resume=True)
    assert resumed.fit().status == "completed"
    assert_equals_straight(out, resumed, straight)


def test_a_resume_that_fails_on_a_full_disk_keeps_the_finished_result(tmp_path, monkeypatch):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    result = (out / "result.json").read_bytes()
    _enospc_after_half(monkeypatch, "checkpoint.pt", 3)
    with pytest.raises(StorageError):
        make_trainer(out, epochs=3, resume=True).fit()
    assert (out / "result.json").read_bytes() == result
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_a_refused_resume_changes_nothing(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    before = files_of(out)
    with pytest.raises(CheckpointError, match="config differs"):
        make_trainer(out, epochs=3, resume=True, lr=0.5).fit()
    assert files_of(out) == before


def test_a_real_full_file_system_is_one_line(tmp_path):
    """The same on a real file system that fills up: a small tmpfs (root only; skipped where
    mounting one is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        filler = mnt / "filler"
        with pytest.raises(StorageError) as info:
            # a checkpoint of the test model is ~20 KB: the first epochs fit, then it is full
            filler.write_bytes(b"\0" * 24_000)
            make_trainer(mnt / "run", epochs=6).fit()
        assert "\n" not in str(info.value) and "disk is full" in str(info.value)
        assert not [p for p in (mnt / "run").iterdir() if ".tmp-" in p.name]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# ---------------------------------------------------------------------------- two writers

HOLDER = """
import sys
from pqcompress import dirlock
dirlock.acquire(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_writer_is_refused_naming_the_holder_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    before = files_of(out)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert f"pid {holder.pid}" in (dirlock.holder(out) or "")
        with pytest.raises(BusyError) as info:
            make_trainer(out, epochs=2, resume=True).fit()
        assert f"pid {holder.pid}" in str(info.value) and "\n" not in str(info.value)
        assert files_of(out) == before
    finally:
        holder.communicate("")
    assert dirlock.holder(out) is None  # released when the holder exits
    assert make_trainer(out, epochs=2, resume=True).fit().epochs_run == 2


def test_a_lock_taken_only_to_refuse_leaves_no_directory(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(CheckpointError), dirlock.locked(out):
        raise CheckpointError("refused")
    assert not out.exists()


# -------------------------------------------------------------------- the CLI and signals

DIGITS = ["--model", "student_cnn", "--dataset", "digits", "--subset", "256", "--no-progress"]


def _cli(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pqcompress", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )


def _wait_for(path: Path, proc: subprocess.Popen, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_between_checkpoint_and_metrics_save_and_resume(tmp_path, sig):
    """The CLI stopped at the one moment that used to leave a run that never resumed: epoch
    1's checkpoint written, its metrics line not yet. Both signals save, say so in one line and
    exit (143 for SIGTERM, 130 for SIGINT); a second process meanwhile is refused."""
    out, hold = tmp_path / "run", tmp_path / "hold"
    hold.touch()
    args = ["train", *DIGITS, "--epochs", "2", "--out", str(out)]
    first = _cli(args, {faults.ENV: faults.spec("epoch", "run@1", hold)})
    _wait_for(out / ".held", first)
    second = _cli(args)
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 2
    assert f"in use by pid {first.pid}" in err2 and "Traceback" not in err2
    first.send_signal(sig)
    _, err = first.communicate(timeout=120)
    assert first.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert "Traceback" not in err and "1 epoch(s) are saved" in err
    assert [r["epoch"] for r in lines(out / "metrics.jsonl")] == [1]
    assert json.loads((out / "result.json").read_text())["status"] == "interrupted"
    hold.unlink()
    resumed = _cli(["train", "--out", str(out), "--resume", "--no-progress"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert [r["epoch"] for r in lines(out / "metrics.jsonl")] == [1, 2]
