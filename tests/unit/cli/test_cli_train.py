"""The CLI as a user meets it: the documented command lines and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pqcompress.cli.main import main
from pqcompress.config import ExperimentConfig

ALL_RECIPES = sorted((Path(__file__).parents[3] / "recipes").glob("*.yaml"))
# sweep recipes (a `grid:` of axes or `include:` points over a base experiment) are checked in
# tests/unit/sweep,
# distillation recipes (`teachers:`) in tests/unit/cli/test_cli_distill.py, search specs
# (`objectives:`) in tests/unit/search/test_search_spec.py, serving benches (`variants:`) in
# tests/unit/loadtest/test_loadtest_bench.py
OTHER_KINDS = {"grid", "include", "teachers", "objectives", "variants"}
RECIPES = [r for r in ALL_RECIPES if not OTHER_KINDS & set(yaml.safe_load(r.read_text()) or {})]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_command_line_trains_and_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "x"
    code, stdout, _ = run_cli(
        [
            "train",
            "--model",
            "cnn5",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--alpha",
            "0.5",
            "--bits",
            "8",
            "--out",
            out,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "best.pt", "result.json"} <= {
        p.name for p in out.iterdir()
    }
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed"
    assert {s["bits"] for s in result["compressor_stats"]} == {8}
    assert 0 < result["density_at_best"] < 1
    cfg = ExperimentConfig.from_yaml(out / "config.yaml")
    assert cfg.compression.alpha == 0.5 and cfg.compression.bits == 8
    assert "best epoch 1" in stdout and "features.0.weight" in stdout

    # resume a finished run: returns its result, trains nothing more
    code, stdout, _ = run_cli(
        ["train", "--recipe", out / "config.yaml", "--out", out, "--resume", "--no-progress"],
        capsys,
    )
    assert code == 0 and len((out / "metrics.jsonl").read_text().splitlines()) == 1

    # the same directory without --resume is refused
    code, _, err = run_cli(
        ["train", "--recipe", out / "config.yaml", "--out", out, "--no-progress"], capsys
    )
    assert code == 2 and "already holds a run" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model", "vgg17"], "unknown model 'vgg17'"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--bits", "33"], "bits=33 is not supported"),
        (["--bits", "1"], "use 2..16 bits, or 32"),
        (["--alpha", "-0.5"], "alpha must be a finite number >= 0"),
        (["--set", "train.lrr=0.1"], "unknown key 'train.lrr' (did you mean 'lr'?)"),
        (["--set", "train.epochs=two"], "'train.epochs' must be an integer"),
        (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "/nonexistent/cifar"),
        (["--preset", "sparse5"], "unknown preset 'sparse5'; the presets are: sparse10-3bit"),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_no_run_directory(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    base = [
        "train",
        "--model",
        "cnn5",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--out",
        out,
        "--no-progress",
    ]
    code, _, err = run_cli(base + args, capsys)
    assert code == 2
    assert needle in err
    assert err.startswith("pqcompress: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_recipe_with_unknown_key_names_it(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: cnn5\ndataset: digits\ncompression: {alpha: 0.5, bitz: 4}\n")
    code, _, err = run_cli(["train", "--recipe", recipe, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "unknown key 'compression.bitz' (did you mean 'bits'?)" in err


def test_flags_override_recipe(tmp_path):
    from pqcompress.cli.main import build_parser
    from pqcompress.cli.train import config_from_args

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: cnn5\ndataset: digits\ntrain: {epochs: 7, lr: 0.1}\ncompression: {alpha: 0.5, bits: 4}\n"
    )
    args = build_parser().parse_args(
        [
            "train",
            "--recipe",
            str(recipe),
            "--lr",
            "0.01",
            "--bits",
            "8",
            "--set",
            "compression.form=uniform",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.train.epochs, cfg.train.lr) == (7, 0.01)
    assert (cfg.compression.alpha, cfg.compression.bits, cfg.compression.form) == (
        0.5,
        8,
        "uniform",
    )
    args = build_parser().parse_args(["train", "--recipe", str(recipe), "--no-compress"])
    assert config_from_args(args).compression is None


def test_density_and_schedule_flags_reach_the_config():
    from pqcompress.cli.main import build_parser
    from pqcompress.cli.train import config_from_args

    args = build_parser().parse_args(
        [
            "train",
            "--model",
            "cnn5",
            "--dataset",
            "digits",
            "--bits",
            "4",
            "--target-density",
            "0.1",
            "--mask",
            "sticky",
            "--ramp-epochs",
            "2.5",
            "--lr-schedule",
            "onecycle",
            "--warmup-fraction",
            "0.2",
            "--nesterov",
            "--label-smoothing",
            "0.1",
        ]
    )
    cfg = config_from_args(args)
    c, t = cfg.compression, cfg.train
    assert (c.bits, c.target_density, c.mask) == (4, 0.1, "sticky")
    assert (t.ramp_epochs, t.lr_schedule, t.warmup_fraction) == (2.5, "onecycle", 0.2)
    assert (t.nesterov, t.label_smoothing) == (True, 0.1)
    args = build_parser().parse_args(["train", "--no-nesterov", "--ramp-steps", "100"])
    cfg = config_from_args(args)
    assert cfg.train.nesterov is False and cfg.compression.ramp_steps == 100
    args = build_parser().parse_args(["train", "--channels-last", "--optimizer", "adamw"])
    cfg = config_from_args(args)
    assert cfg.train.channels_last is True and cfg.train.optimizer == "adamw"
    assert config_from_args(build_parser().parse_args(["train"])).train.channels_last is False


def test_a_preset_sets_its_keys_and_explicit_flags_win(tmp_path):
    from pqcompress.cli.main import build_parser
    from pqcompress.cli.train import config_from_args

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: cnn5\ndataset: digits\ncompression: {bits: 8, alpha: 2.0}\n")
    args = build_parser().parse_args(
        ["train", "--recipe", str(recipe), "--preset", "sparse10-4bit", "--ramp-epochs", "3"]
    )
    cfg = config_from_args(args)
    c = cfg.compression
    assert (c.bits, c.alpha, c.target_density, c.solve_min_share) == (4, 0.5, 0.1, 0.05)
    assert cfg.train.ramp_epochs == 3  # the flag, not the preset's 6
    args = build_parser().parse_args(["train", "--preset", "studies", "--bits", "3"])
    c = config_from_args(args).compression
    assert (c.update, c.rounding, c.alpha, c.bits) == ("inplace", "floor", 0.625, 3)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_recipe_loads_and_round_trips(recipe):
    cfg = ExperimentConfig.from_yaml(recipe)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    from pqcompress.data import available_datasets
    from pqcompress.models import available_models
    from pqcompress.models.factory import import_factory, is_factory_path

    if is_factory_path(cfg.model):  # a user's model (examples/): its factory imports
        assert callable(import_factory(cfg.model))
    else:
        assert cfg.model in available_models()
    assert cfg.dataset in available_datasets()


def test_registry_listings(capsys):
    from pqcompress.models import available_models

    code, out, _ = run_cli(["models"], capsys)
    rows = [line.split("│") for line in out.splitlines() if line.count("│") == 4]
    listed = [r[1].strip() for r in rows]
    assert code == 0 and listed == sorted(available_models())
    assert {"vgg16_cifar", "cnn5", "amc1d", "resnet20", "student_cnn"} <= set(listed)
    by_name = {r[1].strip(): (r[2].strip(), r[3].strip()) for r in rows}
    assert by_name["cnn5"] == ("3x32x32", "2,143,174")  # input shape, parameters
    assert by_name["amc1d"][0] == "2x1024"
    code, out, _ = run_cli(["datasets"], capsys)
    assert code == 0 and "digits" in out.split()


def test_resume_takes_the_saved_config_and_only_epochs_may_change(tmp_path, capsys):
    out = tmp_path / "run"
    first = ["train", "--model", "cnn5", "--dataset", "digits", "--epochs", "1", "--bits", "4",
             "--alpha", "0.8", "--max-steps-per-epoch", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    assert run_cli(first, capsys)[0] == 0
    # the README form: no other flag; the saved 4-bit config continues (not the CLI defaults)
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--no-progress"], capsys)
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["compression"]["bits"] == 4 and saved["train"]["epochs"] == 1
    code, _, err = run_cli(
        ["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"], capsys
    )
    assert code == 0, err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--bits", "8"], capsys)
    assert code == 2 and "compression.bits" in err and "only train.epochs" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("what", ["missing", "file", "empty"])
def test_resume_of_something_that_is_not_a_run_is_refused(tmp_path, capsys, what):
    target = tmp_path / "x"
    if what == "file":
        target.write_text("not a run")
    elif what == "empty":
        target.mkdir()
    code, _, err = run_cli(["train", "--out", str(target), "--resume"], capsys)
    needle = {"missing": "does not exist", "file": "not a directory", "empty": "holds no run"}
    assert code == 2 and needle[what] in err and err.count("\n") == 1
    assert what != "missing" or not target.exists()


def test_a_diverging_float_run_stops_with_an_error_and_keeps_finished_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "cnn5", "--dataset", "digits", "--epochs", "3", "--lr", "1e6",
            "--no-compress", "--out", str(out), "--no-progress"]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "diverged" in err
    assert not (out / "result.json").exists()
    lines = (
        (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    )
    for line in lines:  # what was written is finished epochs only
        assert json.loads(line)["train_loss"] == json.loads(line)["train_loss"]


def test_a_recipe_with_several_unknown_keys_names_them_all(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: cnn5\ndataset: digits\ntrain: {lrr: 0.1, epocs: 2}\ncompression: {bitz: 4}\n"
    )
    code, _, err = run_cli(["train", "--recipe", recipe, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "3 unknown keys" in err and len(err.strip().splitlines()) == 1
    for key, hint in (("train.lrr", "lr"), ("train.epocs", "epochs"), ("compression.bitz", "bits")):
        assert f"'{key}' (did you mean '{hint}'?)" in err
    assert not (tmp_path / "o").exists()
