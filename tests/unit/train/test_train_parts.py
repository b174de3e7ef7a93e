"""Unit tests of the trainer's parts: best-epoch tracker, lr schedule, checkpoint files, config diff."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from pqcompress.atomic import append_line_synced, atomic_write, write_json_atomic
from pqcompress.aware import PQSGD, Compressor, PQAdam, PQAdamW
from pqcompress.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from pqcompress.config import CompressionConfig, TrainConfig
from pqcompress.errors import CheckpointError, ConfigError
from pqcompress.train.checkpoint import capture_rng, restore_rng
from pqcompress.train.history import MetricsLog
from pqcompress.train.optim import build_optimizer, lr_at_epoch
from pqcompress.train.progress import format_epoch_line
from pqcompress.train.rundir import check_same_config, config_differences
from pqcompress.train.tracking import BestTracker


def row(epoch, test, val=None, train=0.5, density=1.0):
    return {
        "epoch": epoch,
        "test_acc": test,
        "val_acc": val,
        "train_acc": train,
        "density": density,
    }


def test_best_epoch_protocol_uses_test_accuracy_and_records_train_and_density():
    t = BestTracker(monitor="val_acc", best_on="test")  # the studies' protocol, on request
    accs = [(0.50, 0.9), (0.70, 0.6), (0.65, 0.95), (0.70, 0.5)]
    flags = [
        t.update(row(e, test, val, train=0.1 * e, density=1 - 0.1 * e))
        for e, (test, val) in enumerate(accs, 1)
    ]
    assert flags == [True, True, False, False]  # a tie keeps the earlier epoch
    assert t.best_epoch == 2 and t.best_test_acc == 0.70
    assert t.train_acc_at_best == pytest.approx(0.2) and t.density_at_best == pytest.approx(0.8)
    assert t.val_acc_at_best == 0.6
    assert (t.best_val_acc, t.best_val_epoch) == (0.95, 3)
    assert t.selection == "test"


def test_validation_chooses_by_default():
    from pqcompress.config import TrainConfig

    assert TrainConfig().best_on == "val" and BestTracker().best_on == "val"
    t = BestTracker(monitor="val_acc")
    t.update(row(1, 0.9, 0.5))
    assert not t.update(row(2, 0.95, 0.4)) and t.selection == "val"
    no_val = BestTracker(monitor="test_acc")
    no_val.update(row(1, 0.4))
    assert no_val.selection == "test"  # no validation split: said, not hidden


def test_best_on_val_chooses_by_validation_and_reports_test_there():
    t = BestTracker(monitor="val_acc", best_on="val")
    accs = [(0.50, 0.9), (0.70, 0.6), (0.65, 0.95), (0.90, 0.95)]
    flags = [t.update(row(e, test, val)) for e, (test, val) in enumerate(accs, 1)]
    assert flags == [True, False, True, False]  # test accuracy plays no part; ties keep 3
    assert t.best_epoch == 3 and t.best_test_acc == 0.65 and t.val_acc_at_best == 0.95
    no_val = BestTracker(monitor="test_acc", best_on="val")
    assert no_val.update(row(1, 0.4)) and not no_val.update(row(2, 0.3))


def test_old_checkpoint_state_keeps_choosing_on_test_accuracy():
    t = BestTracker(monitor="val_acc", best_on="test")
    t.update(row(1, 0.6, 0.5))
    old = {k: v for k, v in t.state_dict().items() if k not in ("best_score", "best_on")}
    u = BestTracker(monitor="val_acc", best_on="test")
    u.load_state_dict(old)
    assert not u.update(row(2, 0.55, 0.9)) and u.update(row(3, 0.61, 0.1))


def test_early_stopping_counts_epochs_without_strict_improvement():
    t = BestTracker(patience=2, monitor="val_acc")
    for epoch, val in enumerate([0.5, 0.6, 0.6, 0.7, 0.7], 1):
        t.update(row(epoch, 0.5, val))
        assert not t.should_stop
    t.update(row(6, 0.5, 0.65))
    assert t.should_stop and t.bad_epochs == 2
    never = BestTracker(patience=0, monitor="test_acc")
    for epoch in range(1, 20):
        never.update(row(epoch, 0.5))
    assert not never.should_stop


def test_tracker_state_round_trips():
    t = BestTracker(patience=3, monitor="val_acc")
    t.update(row(1, 0.4, 0.3), {"macro_f1": 0.2})
    u = BestTracker(patience=3, monitor="val_acc")
    u.load_state_dict(t.state_dict())
    assert u == t


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("none", [0.1, 0.1, 0.1, 0.1]),
        ("step", [0.1, 0.1, 0.05, 0.05]),
        (
            "cosine",
            [
                0.1,
                0.1 * (1 + math.cos(math.pi / 4)) / 2,
                0.05,
                0.1 * (1 + math.cos(3 * math.pi / 4)) / 2,
            ],
        ),
    ],
)
def test_lr_schedules(schedule, expected):
    cfg = TrainConfig(epochs=4, lr=0.1, lr_schedule=schedule, lr_step_size=2, lr_gamma=0.5)
    assert [lr_at_epoch(cfg, e) for e in range(4)] == pytest.approx(expected)


def test_optimizers_follow_config():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(params, TrainConfig(momentum=0.8, nesterov=True, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.8, True, 1e-4)
    adam = build_optimizer(params, TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-3))
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["weight_decay"] == 1e-3
    adamw = build_optimizer(params, TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.05
    with pytest.raises(ConfigError, match="nesterov"):
        build_optimizer(params, TrainConfig(momentum=0.0, nesterov=True))


@pytest.mark.parametrize(("name", "fused"), [("sgd", PQSGD), ("adam", PQAdam), ("adamw", PQAdamW)])
def test_with_a_compressor_every_optimizer_is_its_fused_counterpart(name, fused):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    comp = Compressor(model, CompressionConfig(bits=4))
    opt = build_optimizer(model.parameters(), TrainConfig(optimizer=name, lr=1e-3), comp)
    assert type(opt) is fused and opt.compressor is comp


def test_checkpoint_round_trip_and_format_checks(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 2, "model": {"w": torch.arange(3.0)}, "rng": capture_rng()})
    data = load_checkpoint(path)
    assert data["format_version"] == FORMAT_VERSION and data["epoch"] == 2
    assert torch.equal(data["model"]["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left

    torch.save({"format": "pqcompress-checkpoint", "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "new.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "torn.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class Arbitrary:
    """A pickled object of a foreign class: weights_only loading must refuse it."""


def test_checkpoint_loading_never_unpickles_arbitrary_objects(tmp_path):
    torch.save(
        {"format": "pqcompress-checkpoint", "format_version": 1, "x": Arbitrary()},
        tmp_path / "evil.pt",
    )
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_round_trips():
    state = capture_rng()
    a = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    restore_rng(state)
    b = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"status": "completed"})

    def broken(fh):
        fh.write(b"{partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert os.listdir(tmp_path) == ["result.json"]


def test_metrics_log_restore_requires_the_checkpointed_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for epoch in (1, 2):
        append_line_synced(path, json.dumps({"epoch": epoch}))
    log = MetricsLog(path)
    log.restore(1)
    assert log.rows == [{"epoch": 1}] and path.read_text() == '{"epoch": 1}\n'
    with pytest.raises(CheckpointError, match="1 complete epoch line"):
        MetricsLog(path).restore(2)


def test_config_differences_ignore_epochs_and_name_nested_keys(tmp_path):
    saved = {"train": {"epochs": 2, "lr": 0.1}, "compression": {"bits": 8, "include": ["a"]}}
    now = {"train": {"epochs": 5, "lr": 0.1}, "compression": {"bits": 4, "include": ["a"]}}
    assert config_differences(saved, now) == ["compression.bits"]
    assert config_differences(saved, {**now, "compression": None}) == ["compression"]
    with pytest.raises(
        CheckpointError, match=r"compression\.bits \(compression\.bits: saved 8, now 4\)"
    ):
        check_same_config(saved, now, tmp_path)


def test_epoch_line_format():
    line = format_epoch_line(
        {
            "epoch": 2,
            "train_loss": 0.5,
            "train_acc": 0.8,
            "val_acc": None,
            "test_loss": 0.6,
            "test_acc": 0.75,
            "best_test_acc": 0.76,
            "best_epoch": 1,
            "density": 0.3,
            "lr": 0.05,
            "epoch_time_s": 1.25,
            "compress_time_s": 0.1,
        },
        10,
    )
    assert line.startswith("epoch 2/10 | train loss 0.5000 acc 80.00% | test loss 0.6000")
    assert "best 76.00% @1" in line and "density 30.00%" in line and "val" not in line


def test_onecycle_warms_up_then_anneals():
    from pqcompress.train.optim import onecycle_lr

    cfg = TrainConfig(epochs=10, lr=0.2, lr_schedule="onecycle", warmup_fraction=0.25)
    assert onecycle_lr(cfg, 0.0) == pytest.approx(0.2 / 25)
    assert onecycle_lr(cfg, 0.25) == pytest.approx(0.2)
    assert onecycle_lr(cfg, 1.0) == pytest.approx(0.2 / 25 / 1e4)
    ups = [onecycle_lr(cfg, t / 100) for t in range(26)]
    downs = [onecycle_lr(cfg, t / 100) for t in range(25, 101)]
    assert ups == sorted(ups) and downs == sorted(downs, reverse=True)
    assert lr_at_epoch(cfg, 5) == pytest.approx(onecycle_lr(cfg, 0.5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup_fraction": 0.0},
        {"warmup_fraction": 1.0},
        {"label_smoothing": 1.0},
        {"ramp_epochs": -1.0},
    ],
)
def test_bad_schedule_options_are_config_errors(kwargs):
    from pqcompress.errors import ConfigError

    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)
