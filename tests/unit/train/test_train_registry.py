"""train(): model and data from the registries (cnn5 on digits), end to end on CPU."""

from __future__ import annotations

import json

import pytest

from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig
from pqcompress.errors import CheckpointError, PQCError
from pqcompress.train import train


def digits_config(**train_kwargs) -> ExperimentConfig:
    defaults = dict(epochs=1, batch_size=32, optimizer="adam", lr=3e-3, device="cpu", threads=1)
    compression = train_kwargs.pop("compression", None)
    return ExperimentConfig(
        model="cnn5",
        dataset="digits",
        model_args={"width": 0.25, "dropout": 0.0},
        train=TrainConfig(**{**defaults, **train_kwargs}),
        compression=compression,
    )


def test_train_cnn5_on_digits_learns_and_writes_run_dir(tmp_path):
    out = tmp_path / "run"
    result = train(digits_config(epochs=3), out, progress=False)
    assert result.status == "completed" and result.epochs_run == 3
    assert result.best_test_acc > 0.5  # chance is 0.1
    assert result.config["model"] == "cnn5"
    assert ExperimentConfig.from_yaml(out / "config.yaml") == digits_config(epochs=3)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "result.json").read_text())["best_epoch"] == result.best_epoch
    again = train(digits_config(epochs=3), out, progress=False, resume=True)
    assert again.to_dict() == result.to_dict()
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(digits_config(epochs=3), out, progress=False)
    with pytest.raises(CheckpointError, match=r"train\.lr"):
        train(digits_config(epochs=3, lr=1e-2), out, progress=False, resume=True)


@pytest.mark.parametrize(
    "config",
    [
        ExperimentConfig(model="no_such_model", dataset="digits"),
        ExperimentConfig(model="cnn5", dataset="no_such_data"),
        ExperimentConfig(model="cnn5", dataset="digits", model_args={"bogus": 1}),
    ],
)
def test_bad_input_leaves_no_run_directory(tmp_path, config):
    out = tmp_path / "run"
    with pytest.raises(PQCError):
        train(config, out, progress=False)
    assert not out.exists()


def test_train_with_real_compressor(tmp_path):
    import pqcompress.aware.compressor  # noqa: F401  (our own module: a broken import must fail)

    compression = CompressionConfig(alpha=0.5, bits=8)
    result = train(
        digits_config(epochs=1, max_steps_per_epoch=10, compression=compression),
        tmp_path / "run",
        progress=False,
    )
    assert result.status == "completed"
    assert result.final["density"] < 1.0 and result.final["compress_time_s"] > 0.0
    assert result.compressor_stats and {"name", "sparsity", "bits"} <= set(
        result.compressor_stats[0]
    )


def test_resume_with_real_compressor_is_bit_identical(tmp_path):
    import torch

    import pqcompress.aware.compressor  # noqa: F401  (our own module: a broken import must fail)

    compression = CompressionConfig(alpha=0.5, bits=4, rounding="stochastic", update="latent")

    def config(epochs):
        return digits_config(
            epochs=epochs, optimizer="sgd", lr=0.05, max_steps_per_epoch=6, compression=compression
        )

    straight = train(config(3), tmp_path / "a", progress=False)
    train(config(2), tmp_path / "b", progress=False)
    resumed = train(config(3), tmp_path / "b", progress=False, resume=True)
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    timing = {"epoch_time_s", "train_time_s", "compress_time_s", "eval_time_s"}

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]

    assert strip(resumed.history) == strip(straight.history)
    assert resumed.compressor_stats == straight.compressor_stats


def test_init_from_starts_from_a_trained_run_and_refuses_a_misfit(tmp_path):
    """init_from loads the run's best.pt before training: an epoch at lr ~ 0 keeps the
    trained weights (only BatchNorm statistics move), so the run scores like the trained one
    and far above the same run from scratch; a model whose shapes differ is refused, naming
    what does not fit."""
    import dataclasses

    import torch

    from pqcompress.checkpoint import load_model_state
    from pqcompress.models.registry import build_model
    from pqcompress.train.trainer import load_initial_weights

    base = tmp_path / "base"
    first = train(digits_config(epochs=2), base, progress=False)
    still = digits_config(epochs=1, lr=1e-9, optimizer="sgd", momentum=0.0)
    tuned = train(
        dataclasses.replace(still, init_from=str(base)), tmp_path / "tuned", progress=False
    )
    scratch = train(still, tmp_path / "scratch", progress=False)
    assert first.best_test_acc > 0.5 and scratch.best_test_acc < 0.3
    assert tuned.best_test_acc > first.best_test_acc - 0.1
    model = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8), width=0.25, dropout=0.0)
    load_initial_weights(model, base / "best.pt")
    for k, v in load_model_state(base / "best.pt").items():
        assert torch.equal(model.state_dict()[k], v)
    wider = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8), width=0.5, dropout=0.0)
    with pytest.raises(CheckpointError, match=r"^init_from: the weights .*\(wrong shape"):
        load_initial_weights(wider, base)
    with pytest.raises(CheckpointError, match=r"^distill\.teacher: the weights .*\(wrong shape"):
        load_initial_weights(wider, base, what="distill.teacher")
    with pytest.raises(CheckpointError, match="neither a finished run"):
        load_initial_weights(model, tmp_path / "nowhere")


def test_a_fine_tune_keeps_the_validation_split_of_the_run_it_starts_from(tmp_path):
    """Another seed carves another validation set out of the training images, part of which
    the base model trained on; a run that fine-tunes another (init_from) keeps the base's
    split unless data.split_seed says otherwise."""
    import dataclasses

    from pqcompress.checkpoint import split_seed_of
    from pqcompress.config import DataConfig
    from pqcompress.data import build_dataset
    from pqcompress.train.trainer import split_seed

    base = tmp_path / "base"
    train(digits_config(epochs=1, seed=0), base, progress=False)
    tune = dataclasses.replace(digits_config(seed=1), init_from=str(base))
    assert split_seed_of(base, "digits") == 0 and split_seed_of(base, "cifar10") is None
    assert split_seed_of(base / "best.pt", "digits") == 0 and split_seed_of(None, "x") is None
    assert split_seed(tune) == 0
    assert split_seed(digits_config(seed=1)) == 1  # no base: its own seed
    pinned = dataclasses.replace(tune, data=DataConfig(split_seed=5))
    assert split_seed(pinned) == 5
    # the dataset honours data.split_seed over the seed it is given
    rows = set(build_dataset("digits", DataConfig(split_seed=0), seed=1).val.rows.tolist())
    assert rows == set(build_dataset("digits", DataConfig(), seed=0).val.rows.tolist())
    assert rows != set(build_dataset("digits", DataConfig(), seed=1).val.rows.tolist())


def test_distill_trains_a_student_on_the_teachers_outputs_alone(tmp_path):
    """distill.teacher: a trained run (here a wider cnn5) teaches a narrower student. With the
    hard (label) term off the labels never reach the loss, so the student learns only if the
    teacher's outputs arrive; it does, and the run records the setting."""
    import dataclasses

    from pqcompress.config import DistillConfig

    teacher = tmp_path / "teacher"
    wide = dataclasses.replace(digits_config(epochs=3), model_args={"width": 0.5, "dropout": 0.0})
    assert train(wide, teacher, progress=False).best_test_acc > 0.8
    spec = DistillConfig(teacher=str(teacher), temperature=2.0, soft_weight=1.0, hard_weight=0.0)
    student = dataclasses.replace(digits_config(epochs=3), distill=spec)
    result = train(student, tmp_path / "student", progress=False)
    assert result.best_test_acc > 0.5  # chance is 0.1
    assert result.config["distill"]["teacher"] == str(teacher)
    loaded = ExperimentConfig.from_yaml(tmp_path / "student" / "config.yaml")
    assert loaded.distill == spec


def test_distill_refuses_a_teacher_that_saw_the_validation_images_or_is_not_there(tmp_path):
    import dataclasses

    from pqcompress.config import DistillConfig
    from pqcompress.errors import ConfigError

    teacher = tmp_path / "teacher"
    train(digits_config(epochs=1, seed=0), teacher, progress=False)
    other_split = dataclasses.replace(
        digits_config(seed=1), distill=DistillConfig(teacher=str(teacher))
    )
    with pytest.raises(ConfigError, match=r"set data\.split_seed: 0"):
        train(other_split, None, progress=False)
    with pytest.raises(CheckpointError, match=r"distill\.teacher: .* neither a finished run"):
        train(
            dataclasses.replace(
                digits_config(), distill=DistillConfig(teacher=str(tmp_path / "nowhere"))
            ),
            None,
            progress=False,
        )
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "best.pt").write_bytes((teacher / "best.pt").read_bytes())
    (moved / "config.yaml").write_text(
        (teacher / "config.yaml").read_text().replace("dataset: digits", "dataset: cifar10")
    )
    with pytest.raises(ConfigError, match="trained on 'cifar10'"):
        train(
            dataclasses.replace(digits_config(), distill=DistillConfig(teacher=str(moved))),
            None,
            progress=False,
        )
    with pytest.raises(ConfigError, match="label_smoothing"):
        dataclasses.replace(
            digits_config(label_smoothing=0.1), distill=DistillConfig(teacher=str(teacher))
        )
    with pytest.raises(ConfigError, match=r"distill\.temperature"):
        DistillConfig(teacher="x", temperature=0.0)
    with pytest.raises(ConfigError, match=r"distill\.teacher"):
        ExperimentConfig.from_dict({"distill": {"teacher": " "}})
