"""Checkpoints and resume: bit-identical continuation, torn metrics lines, guards, Ctrl-C."""

from __future__ import annotations

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

from pqcompress.checkpoint import load_checkpoint, state_digest
from pqcompress.config import CompressionConfig
from pqcompress.errors import CheckpointError
from pqcompress.train import loop

TIMING_KEYS = {"epoch_time_s", "train_time_s", "compress_time_s", "eval_time_s"}
COMPRESSION = CompressionConfig(alpha=0.3, schedule="step")


def deterministic(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_resume_is_bit_identical_to_uninterrupted_run(tmp_path, fake_compressor):
    # SGD momentum (optimizer state), dropout (global RNG), step lr schedule, compressor state
    kw = dict(compression=COMPRESSION, lr_schedule="step", lr_step_size=2, lr_gamma=0.5)
    straight = make_trainer(tmp_path / "straight", epochs=3, **kw)
    full = straight.fit()

    first = make_trainer(tmp_path / "resumed", epochs=2, **kw)
    assert first.fit().epochs_run == 2
    resumed = make_trainer(tmp_path / "resumed", epochs=3, resume=True, **kw)
    result = resumed.fit()

    assert result.status == "completed" and result.epochs_run == 3
    assert_same_weights(straight.model, resumed.model)
    assert resumed.compressor.state_dict() == straight.compressor.state_dict()
    assert deterministic(lines(tmp_path / "resumed" / "metrics.jsonl")) == deterministic(
        lines(tmp_path / "straight" / "metrics.jsonl")
    )
    assert deterministic(result.history) == deterministic(full.history)
    assert result.best_epoch == full.best_epoch and result.best_test_acc == full.best_test_acc
    assert "epochs: 3" in (tmp_path / "resumed" / "config.yaml").read_text()


def test_resume_drops_half_written_metrics_line(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    with open(out / "metrics.jsonl", "a") as fh:  # killed while writing epoch 3's line
        fh.write('{"epoch": 3, "lr": 0.05, "train_lo')
    (out / "result.json").unlink()  # a SIGKILL leaves no result.json
    result = make_trainer(out, epochs=3, resume=True).fit()
    rows = lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert result.epochs_run == 3


def test_resume_drops_complete_line_of_an_epoch_without_checkpoint(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    rows = lines(out / "metrics.jsonl")
    extra = dict(rows[-1], epoch=3)
    with open(out / "metrics.jsonl", "a") as fh:  # line written, then killed before checkpoint
        fh.write(json.dumps(extra) + "\n")
    (out / "result.json").unlink()
    trainer = make_trainer(out, epochs=2, resume=True)
    trainer.fit()
    assert [r["epoch"] for r in lines(out / "metrics.jsonl")] == [1, 2]


def test_resume_with_different_config_names_the_key(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    with pytest.raises(CheckpointError, match=r"train\.lr") as info:
        make_trainer(out, epochs=2, resume=True, lr=0.01).fit()
    message = str(info.value)
    assert "differs from the saved run in train.lr (" in message
    assert "saved 0.05, now 0.01" in message


def test_existing_run_dir_without_resume_is_refused(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    with pytest.raises(CheckpointError, match="already holds a run; pass resume=True"):
        make_trainer(out, epochs=1)


def test_resume_of_finished_run_returns_its_result(tmp_path):
    out = tmp_path / "run"
    first = make_trainer(out, epochs=2).fit()
    before = (out / "metrics.jsonl").read_text()
    again = make_trainer(out, epochs=2, resume=True)
    result = again.fit()
    assert result.to_dict() == first.to_dict()
    assert (out / "metrics.jsonl").read_text() == before
    assert_same_weights(again.model, first.model)


def test_resume_extends_a_completed_run(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    result = make_trainer(out, epochs=2, resume=True).fit()
    assert result.status == "completed" and result.epochs_run == 2


def test_resume_without_checkpoint_starts_from_scratch(tmp_path, capsys):
    result = make_trainer(tmp_path / "new", epochs=1, resume=True).fit()
    assert result.epochs_run == 1
    assert "starting the run from epoch 1" in capsys.readouterr().err


def test_leftover_temp_file_does_not_break_resume(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    (out / "result.json").unlink()
    junk = out / "checkpoint.pt.tmp-99999"  # a save killed before os.replace
    junk.write_bytes(b"\x00garbage")
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    result = make_trainer(out, epochs=2, resume=True).fit()
    assert result.epochs_run == 2 and not junk.exists()


def test_keyboard_interrupt_saves_and_resumes_identically(tmp_path, monkeypatch, capsys):
    straight = make_trainer(tmp_path / "straight", epochs=3)
    straight.fit()

    real_step = loop.train_step
    calls = {"n": 0}

    def step_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # second step of epoch 2 (6 steps per epoch)
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "train_step", step_then_interrupt)
    result = make_trainer(out, epochs=3).fit()
    assert result.status == "interrupted" and result.epochs_run == 1
    assert len(result.history) == 1
    assert json.loads((out / "result.json").read_text())["status"] == "interrupted"
    assert "resume=True (CLI: --resume)" in capsys.readouterr().err

    monkeypatch.setattr(loop, "train_step", real_step)
    resumed = make_trainer(out, epochs=3, resume=True)
    final = resumed.fit()
    assert final.status == "completed" and final.epochs_run == 3
    assert_same_weights(straight.model, resumed.model)
    assert deterministic(lines(out / "metrics.jsonl")) == deterministic(
        lines(tmp_path / "straight" / "metrics.jsonl")
    )


def test_interrupt_in_first_epoch_leaves_a_resumable_directory(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "train_step", interrupt)
    result = make_trainer(out, epochs=1).fit()
    assert result.status == "interrupted" and result.epochs_run == 0
    assert result.best_test_acc is None
    monkeypatch.undo()
    assert make_trainer(out, epochs=1, resume=True).fit().status == "completed"


CHILD = """
import sys, time
sys.path.insert(0, {here!r})
from train_support import make_trainer
from pqcompress.train import loop
real = loop.train_step
def slow_step(*args, **kwargs):
    time.sleep(0.03)
    return real(*args, **kwargs)
loop.train_step = slow_step
make_trainer({out!r}, epochs=4).fit()
"""


@pytest.mark.slow
def test_sigkill_loses_at_most_the_current_epoch(tmp_path):
    out = tmp_path / "run"
    code = CHILD.format(here=str(Path(__file__).parent), out=str(out))
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").is_file():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.1)  # well inside the next epoch
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert not (out / "result.json").exists()
    saved = load_checkpoint(out / "checkpoint.pt")["epoch"]
    assert 1 <= saved < 4

    straight = make_trainer(tmp_path / "straight", epochs=4)
    straight.fit()
    resumed = make_trainer(out, epochs=4, resume=True)
    assert resumed.fit().status == "completed"
    assert_same_weights(straight.model, resumed.model)
    assert deterministic(lines(out / "metrics.jsonl")) == deterministic(
        lines(tmp_path / "straight" / "metrics.jsonl")
    )


# ---------------------------------------------------------------- damaged run directories


def _damage(out: Path, how: str) -> None:
    from pqcompress.checkpoint import save_checkpoint

    ckpt_path = out / "checkpoint.pt"
    if how.startswith("flip@"):
        data = bytearray(ckpt_path.read_bytes())
        data[int(len(data) * float(how[5:]))] ^= 0x10
        ckpt_path.write_bytes(bytes(data))
        return
    if how == "directory":
        ckpt_path.unlink()
        ckpt_path.mkdir()
        return
    if how == "missing":
        ckpt_path.unlink()
        return
    state = load_checkpoint(ckpt_path)
    for key in ("format", "format_version"):
        state.pop(key)
    if how == "nan":
        name = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    elif how in ("epoch=-1", "epoch=2.7", "epoch=true"):
        state["epoch"] = {"epoch=-1": -1, "epoch=2.7": 2.7, "epoch=true": True}[how]
    elif how == "no-optimizer":
        del state["optimizer"]
    save_checkpoint(ckpt_path, state)  # a well-formed file with a valid digest: the values lie


DAMAGE = [f"flip@{f}" for f in (0.2, 0.35, 0.5, 0.65, 0.8, 0.95)] + [
    "directory",
    "nan",
    "epoch=-1",
    "epoch=2.7",
    "epoch=true",
    "no-optimizer",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_checkpoint_is_refused_and_metrics_are_kept(tmp_path, how):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    (out / "result.json").unlink()  # as if killed: the resume must read the checkpoint
    metrics = (out / "metrics.jsonl").read_bytes()
    before = state_digest(load_checkpoint(out / "checkpoint.pt"))
    _damage(out, how)
    if how.startswith("flip@"):
        try:  # a flip in the zip's alignment padding changes no value: that file is fine
            if state_digest(load_checkpoint(out / "checkpoint.pt")) == before:
                return
        except CheckpointError:
            pass
    with pytest.raises(CheckpointError) as info:
        make_trainer(out, epochs=3, resume=True).fit()
    assert "\n" not in str(info.value)
    assert (out / "metrics.jsonl").read_bytes() == metrics  # finished epochs never lost


def test_metrics_without_a_checkpoint_are_set_aside_and_the_run_starts_again(tmp_path, capsys):
    """Stopped before the first checkpoint (or the checkpoint removed): the lines cannot be
    resumed from, so they move to metrics.dropped.jsonl with a note and epoch 1 starts."""
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    (out / "result.json").unlink()
    metrics = (out / "metrics.jsonl").read_bytes()
    (out / "checkpoint.pt").unlink()
    result = make_trainer(out, epochs=2, resume=True).fit()
    assert result.status == "completed" and result.epochs_run == 2
    assert (out / "metrics.dropped.jsonl").read_bytes() == metrics
    assert "metrics.dropped.jsonl" in capsys.readouterr().err


def test_metrics_without_a_checkpoint_beside_a_result_are_refused_unchanged(tmp_path):
    out = tmp_path / "run"
    make_trainer(out, epochs=2).fit()
    (out / "checkpoint.pt").unlink()
    before = files_of(out)
    with pytest.raises(CheckpointError, match=r"no checkpoint\.pt"):
        make_trainer(out, epochs=3, resume=True).fit()
    assert files_of(out) == before


def files_of(run: Path) -> dict[str, bytes]:
    """The run's files and contents (the writer lock's note of who held it last aside)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def test_a_checkpoint_digest_catches_a_flipped_bit_inside_a_tensor(tmp_path):
    from pqcompress.checkpoint import save_checkpoint

    path = tmp_path / "c.pt"
    w = torch.arange(4096, dtype=torch.float32)
    save_checkpoint(path, {"model": {"w": w}})
    data = bytearray(path.read_bytes())
    at = bytes(data).find(w.numpy().tobytes()[4000:4016])  # inside the stored tensor bytes
    assert at > 0
    data[at + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_a_run_saved_before_a_new_config_field_still_resumes(tmp_path):
    """config.yaml written before ``init_from`` existed (no such key) compares equal to the
    current config with the field at its default; a real difference is still refused."""
    from pqcompress.config import ExperimentConfig
    from pqcompress.errors import CheckpointError
    from pqcompress.train.rundir import check_same_config

    current = ExperimentConfig(model="cnn5", dataset="digits").to_dict()
    saved = {k: v for k, v in current.items() if k != "init_from"}
    check_same_config(saved, current, tmp_path)  # no error
    changed = {**saved, "model": "resnet20"}
    with pytest.raises(CheckpointError, match="model"):
        check_same_config(changed, current, tmp_path)


def test_a_run_saved_under_a_former_default_resumes_where_the_run_id_is_the_same(tmp_path):
    """allocation's default moved from std to lamp. A run saved with std and no target
    density (where allocation does nothing) resumes under today's default, as its run id is
    unchanged; a run that solved a density with std is a different run from one with lamp."""
    from pqcompress.config import CompressionConfig, ExperimentConfig
    from pqcompress.errors import CheckpointError
    from pqcompress.train.rundir import check_same_config

    def cfg(**kw):
        return ExperimentConfig(
            model="cnn5", dataset="digits", compression=CompressionConfig(bits=4, **kw)
        ).to_dict()

    check_same_config(cfg(allocation="std"), cfg(), tmp_path)  # no error: no effect here
    with pytest.raises(CheckpointError, match=r"compression.allocation: saved 'std', now 'lamp'"):
        check_same_config(
            cfg(allocation="std", target_density=0.1), cfg(target_density=0.1), tmp_path
        )
