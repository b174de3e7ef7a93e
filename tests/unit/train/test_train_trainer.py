"""Trainer: metrics.jsonl lines, run-dir files, best epoch, early stopping, schedules."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_support import make_trainer

from pqcompress.checkpoint import load_checkpoint, load_model_state
from pqcompress.config import CompressionConfig
from pqcompress.errors import ConfigError
from pqcompress.train import RunResult
from pqcompress.train.history import EPOCH_KEYS


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_jsonl_one_line_per_epoch_with_documented_keys(tmp_path, run_trainer):
    out = tmp_path / "run"
    _, result = run_trainer(out, epochs=3)
    rows = read_lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert tuple(row) == EPOCH_KEYS
        assert 0.0 <= row["train_acc"] <= 1.0 and 0.0 <= row["test_acc"] <= 1.0
        assert row["val_acc"] is not None and row["train_metric"] == "running"
        assert row["steps"] == 6 and row["samples"] == 96
        assert row["density"] == 1.0 and row["compress_time_s"] == 0.0
    assert result.status == "completed" and result.epochs_run == 3
    assert result.final == rows[-1] and result.history == rows
    assert {p.name for p in out.iterdir()} == {
        ".lock",
        "config.yaml",
        "metrics.jsonl",
        "checkpoint.pt",
        "best.pt",
        "result.json",
    }
    stored = json.loads((out / "result.json").read_text())
    assert stored["status"] == "completed"
    assert RunResult.from_dict(stored).to_dict() == result.to_dict()
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


@pytest.mark.parametrize("best_on", ["val", "test"])
def test_best_epoch_is_highest_selected_accuracy(tmp_path, run_trainer, best_on):
    out = tmp_path / "run"
    trainer, result = run_trainer(out, epochs=5, lr=0.2, best_on=best_on)
    rows = read_lines(out / "metrics.jsonl")
    key = f"{best_on}_acc"
    best = max(rows, key=lambda r: (r[key], -r["epoch"]))
    assert result.selection == best_on and result.test_acc_at_last == rows[-1]["test_acc"]
    assert result.best_epoch == best["epoch"]
    assert result.best_test_acc == best["test_acc"]
    assert result.train_acc_at_best == best["train_acc"]
    assert result.density_at_best == best["density"]
    assert result.val_acc_at_best == best["val_acc"]
    assert result.best_val_acc == max(r["val_acc"] for r in rows)
    assert [r["is_best"] for r in rows].count(True) >= 1
    report = result.test_report_at_best
    assert report is not None and sum(map(sum, report["confusion_matrix"])) == 48
    assert load_checkpoint(out / "best.pt")["epoch"] == best["epoch"]
    # best.pt holds the model of that epoch: reloading it reproduces its test accuracy
    trainer.model.load_state_dict(load_model_state(out / "best.pt"))
    assert trainer.evaluate("test")["accuracy"] == best["test_acc"]


def test_in_memory_run_writes_nothing(tmp_path, run_trainer, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, result = run_trainer(None, epochs=2)
    assert list(tmp_path.iterdir()) == []
    assert result.out_dir is None and len(result.history) == 2 and result.model is not None


def test_early_stopping_stops_when_val_accuracy_stalls(tmp_path, run_trainer):
    # an lr this small changes no prediction, so val accuracy never improves after epoch 1
    _, result = run_trainer(tmp_path / "run", epochs=10, patience=2, lr=1e-12)
    assert result.status == "early_stopped"
    assert result.epochs_run == 3 and len(result.history) == 3
    assert result.early_stop_metric == "val_acc"
    assert result.best_epoch == 1


def test_early_stopping_uses_test_accuracy_without_val_split(capsys, run_trainer):
    _, result = run_trainer(None, epochs=10, patience=1, lr=1e-12, with_val=False)
    assert result.status == "early_stopped" and result.epochs_run == 2
    assert result.early_stop_metric == "test_acc"
    assert result.final["val_acc"] is None and result.best_val_acc is None
    assert "no validation split" in capsys.readouterr().err


def test_full_train_metric_is_a_clean_pass(run_trainer):
    trainer, result = run_trainer(None, epochs=1, train_metric="full")
    again = trainer.evaluate("train")
    assert result.final["train_metric"] == "full"
    assert result.final["train_acc"] == again["accuracy"]
    assert result.final["train_loss"] == pytest.approx(again["loss"])


def test_max_steps_per_epoch_caps_steps(run_trainer):
    _, result = run_trainer(None, epochs=2, max_steps_per_epoch=2)
    assert [r["steps"] for r in result.history] == [2, 2]
    assert [r["samples"] for r in result.history] == [32, 32]


def test_lr_schedule_is_logged_per_epoch(run_trainer):
    _, result = run_trainer(None, epochs=3, lr_schedule="step", lr_step_size=1, lr_gamma=0.5)
    assert [r["lr"] for r in result.history] == [0.05, 0.025, 0.0125]


def test_step_schedule_compresses_after_every_optimizer_step(run_trainer, fake_compressor):
    trainer, result = run_trainer(
        None, epochs=2, compression=CompressionConfig(alpha=0.5, schedule="step")
    )
    comp = trainer.compressor
    assert comp.steps == 12 and comp.applies == 12 and comp.epoch_ends == 2
    assert result.final["density"] < 1.0
    assert result.final["compress_time_s"] > 0.0
    assert result.post is None
    assert [s["name"] for s in result.compressor_stats] == ["0.weight", "3.weight"]


def test_post_schedule_applies_once_after_training(tmp_path, run_trainer, fake_compressor):
    out = tmp_path / "run"
    trainer, result = run_trainer(
        out, epochs=2, compression=CompressionConfig(alpha=0.5, schedule="post")
    )
    assert trainer.compressor.applies == 1
    assert all(r["density"] == 1.0 for r in result.history)
    assert result.post is not None and result.post["density"] < 1.0
    assert set(result.post) >= {"test_acc", "test_loss", "val_acc", "density", "test_report"}
    assert (out / "post.pt").is_file()
    post_state = load_model_state(out / "post.pt")
    assert torch.equal(post_state["0.weight"], trainer.model.state_dict()["0.weight"])


def test_evaluate_rejects_unknown_or_missing_split():
    trainer = make_trainer(None, with_val=False)
    with pytest.raises(ConfigError, match="split"):
        trainer.evaluate("holdout")
    with pytest.raises(ConfigError, match="no val split"):
        trainer.evaluate("val")
    out = trainer.evaluate("test", report=True)
    assert out["n"] == 48 and math.isfinite(out["loss"])
    assert len(out["report"]["confusion_matrix"]) == 3


def test_non_tty_progress_prints_one_line_per_epoch(capsys):
    trainer = make_trainer(None, epochs=2)
    trainer.progress = True  # stdout is captured, so not a TTY: plain lines on stderr
    trainer.fit()
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" | ")[0] for line in err] == ["epoch 1/2", "epoch 2/2"]


def test_onecycle_sets_the_lr_before_every_step(run_trainer, monkeypatch):
    from pqcompress.train import loop
    from pqcompress.train.optim import onecycle_lr

    seen = []
    real = loop.train_step

    def record(model, x, y, optimizer, *rest):
        seen.append(optimizer.param_groups[0]["lr"])
        return real(model, x, y, optimizer, *rest)

    monkeypatch.setattr(loop, "train_step", record)
    trainer, result = run_trainer(None, epochs=2, lr=0.1, lr_schedule="onecycle")
    cfg = trainer.cfg
    assert seen == pytest.approx([onecycle_lr(cfg, s / 12) for s in range(12)])
    assert max(seen) == pytest.approx(0.1, rel=0.1) and seen[0] == pytest.approx(0.1 / 25)
    assert [r["lr"] for r in result.history] == pytest.approx([seen[0], seen[6]])


def test_label_smoothing_reaches_the_loss(run_trainer, monkeypatch):
    from pqcompress.train import loop

    seen = []
    real = loop.train_step

    def record(model, x, y, optimizer, *rest):
        seen.append(rest)
        return real(model, x, y, optimizer, *rest)

    monkeypatch.setattr(loop, "train_step", record)
    run_trainer(None, epochs=1, label_smoothing=0.2)
    assert seen and all(rest == (0.2,) for rest in seen)
    seen.clear()
    run_trainer(None, epochs=1)
    assert seen and all(rest == () for rest in seen)


def test_ramp_epochs_becomes_ramp_steps_of_the_compressor(run_trainer):
    trainer, _ = run_trainer(
        None,
        epochs=2,
        ramp_epochs=1.5,
        compression=CompressionConfig(bits=8, target_density=0.3, mask="sticky"),
    )
    assert trainer.compressor.config.ramp_steps == 9  # 1.5 epochs x 6 steps
    assert trainer.compressor.density() == pytest.approx(0.3, abs=0.02)
