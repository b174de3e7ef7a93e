"""A user's own model by ``package.module:factory``: trained, exported, evaluated, served and
loaded through the CLI and the API; a .pqz records the path but opening it imports nothing."""

from __future__ import annotations

import textwrap
import uuid

import pytest
import torch

import pqcompress as pqc
from pqcompress.cli.main import main
from pqcompress.codec.errors import FormatError
from pqcompress.errors import ConfigError
from pqcompress.models import build_model

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build(num_classes, input_shape, width=8):
        c = input_shape[0]
        return nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, num_classes),
        )

    def plain():  # takes neither num_classes nor input_shape
        return nn.Linear(64, 10)

    def not_a_module(num_classes, input_shape):
        return 42
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's, importable from the working directory (a fresh name per test)."""
    name = f"usermodels_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    return name


def test_the_cli_trains_exports_and_evaluates_a_user_model(user_module, tmp_path, capsys):
    factory = f"{user_module}:build"
    code = main(
        ["train", "--model", factory, "--model-args", '{"width": 4}', "--dataset", "digits",
         "--epochs", "1", "--alpha", "0.5", "--bits", "4", "-o", "run", "--no-progress"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert main(["export", "run", "-o", "m.pqz", "--onnx", "none"]) == 0
    capsys.readouterr()
    # the file names the factory but opening it never imports it
    with pytest.raises(FormatError, match=f"model='{factory}'"):
        pqc.load("m.pqz")
    model = pqc.load("m.pqz", model=factory)
    assert model[0].out_channels == 4  # built with the file's model_args
    assert main(["evaluate", "m.pqz", "--dataset", "digits"]) == 2
    assert "never imports code" in capsys.readouterr().err
    assert main(["evaluate", "m.pqz", "--dataset", "digits", "--model", factory]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_load_takes_a_factory_callable_or_a_module(user_module, tmp_path):
    import importlib

    model = build_model(f"{user_module}:build", num_classes=3, input_shape=(1, 8, 8))
    module = importlib.import_module(user_module)  # importable now: from the working directory
    comp = pqc.Compressor(model, pqc.CompressionConfig(bits=4))
    comp.apply()
    pqc.save(model, tmp_path / "u.pqz", compressor=comp)
    x = torch.randn(2, 1, 8, 8)
    expected = model.eval()(x)
    by_callable = pqc.load(tmp_path / "u.pqz", model=module.build)
    by_module = pqc.load(tmp_path / "u.pqz", model=module.build(3, (1, 8, 8)))
    for loaded in (by_callable, by_module):
        assert torch.equal(loaded(x), expected)


@pytest.mark.requires("onnxruntime")
def test_the_torch_runtime_serves_a_user_model_given_its_factory(user_module, tmp_path):
    from pqcompress.serve.errors import ModelLoadError
    from pqcompress.serve.runtime import load_served_model
    from pqcompress.serve.settings import ServeSettings

    model = build_model(f"{user_module}:build", num_classes=3, input_shape=(1, 8, 8))
    pqc.save(model, tmp_path / "u.pqz", num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(ModelLoadError, match="never imports code"):
        load_served_model(ServeSettings(model=str(tmp_path / "u.pqz"), runtime="torch"))
    served = load_served_model(
        ServeSettings(
            model=str(tmp_path / "u.pqz"), runtime="torch", factory=f"{user_module}:build"
        )
    )
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(torch.from_numpy(served.logits(x.numpy())), model.eval()(x))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz:build", "cannot import"),
        ("{mod}:missing", "has no callable 'missing'"),
        ("{mod}:not_a_module", "not a torch.nn.Module"),
    ],
)
def test_bad_factories_are_one_clear_error(user_module, path, message):
    with pytest.raises(ConfigError, match=message):
        build_model(path.format(mod=user_module), num_classes=10, input_shape=(1, 8, 8))


def test_a_factory_without_shape_arguments_is_called_with_its_options_only(user_module):
    model = build_model(f"{user_module}:plain", num_classes=10, input_shape=(1, 8, 8))
    assert isinstance(model, torch.nn.Linear)


@pytest.mark.requires("onnx", "onnxruntime")
def test_posttrain_and_onnx_export_take_a_user_model(user_module, tmp_path, capsys):
    factory = f"{user_module}:build"
    assert main(["train", "--model", factory, "--dataset", "digits", "--epochs", "1",
                 "-o", "run", "--no-progress"]) == 0  # fmt: skip
    assert main(["export", "run", "-o", "m.onnx"]) == 0  # the run names its own factory
    assert main(["export", "run", "-o", "m.pqz", "--onnx", "none"]) == 0
    assert main(["posttrain", "m.pqz", "--prune", "l1", "--amount", "0.5", "-o", "p.pqz"]) == 2
    assert "never imports code" in capsys.readouterr().err
    assert main(["posttrain", "m.pqz", "--prune", "l1", "--amount", "0.5", "-o", "p.pqz",
                 "--model", factory]) == 0  # fmt: skip
    assert main(["posttrain", "run", "--quantize", "fp16", "-o", "h.pqz"]) == 0
