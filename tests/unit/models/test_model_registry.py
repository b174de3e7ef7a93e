"""Tests for the model registry: names, options, errors and registration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pqcompress.errors import ConfigError, RegistryError
from pqcompress.models import (
    available_models,
    build_model,
    default_input_shape,
    model_options,
    register_model,
)
from pqcompress.models import registry as model_registry
from pqcompress.registry import Registry

BUILT_INS = {
    "vgg16_cifar",
    "vgg11_bn",
    "cnn5",
    "amc1d",
    "resnet20",
    "resnet56",
    "resnet50",
    "student_cnn",
}


def test_importing_the_package_registers_every_built_in() -> None:
    assert set(available_models()) >= BUILT_INS
    assert available_models() == sorted(available_models())


def test_unknown_model_name_lists_accepted_names() -> None:
    with pytest.raises(RegistryError) as info:
        build_model("vgg16")
    message = str(info.value)
    assert "'vgg16'" in message
    for name in BUILT_INS:
        assert name in message
    assert "did you mean 'vgg16_cifar'" in message


def test_unknown_option_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_model("vgg16_cifar", batchnorm=True)
    message = str(info.value)
    assert "'batchnorm'" in message
    assert "batch_norm" in message and "dropout" in message


def test_unknown_option_on_a_model_without_options() -> None:
    with pytest.raises(ConfigError, match=r"'dropout'.*accepted: none"):
        build_model("resnet20", dropout=0.1)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "10"])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("resnet20", num_classes=num_classes)


@pytest.mark.parametrize("shape", [(3, 0, 32), (), (3, 32.0, 32), 32])
def test_bad_input_shape(shape: object) -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("resnet20", input_shape=shape)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("vgg16_cifar", (3, 16, 16)),
        ("amc1d", (3, 32, 32)),
        ("amc1d", (2, 32)),
        ("cnn5", (2, 1024)),
        ("student_cnn", (1, 4, 4)),
    ],
)
def test_input_shape_the_model_cannot_take(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=name):
        build_model(name, input_shape=shape)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("vgg16_cifar", {"dropout": 1.0}),
        ("vgg16_cifar", {"batch_norm": "yes"}),
        ("cnn5", {"dropout": -0.1}),
        ("cnn5", {"width": 0}),
        ("student_cnn", {"width": -1.0}),
    ],
)
def test_bad_option_values(name: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=name):
        build_model(name, **options)


def test_input_shape_may_be_a_list_from_yaml() -> None:
    model = build_model("student_cnn", num_classes=2, input_shape=[1, 28, 28])
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def test_options_and_default_inputs_are_listed() -> None:
    assert model_options("vgg16_cifar") == {"batch_norm": False, "dropout": 0.0}
    assert model_options("cnn5") == {"dropout": 0.3, "width": 1.0}
    assert model_options("amc1d") == {}
    assert default_input_shape("amc1d") == (2, 1024)
    assert default_input_shape("student_cnn") == (1, 28, 28)
    assert default_input_shape("vgg16_cifar") == (3, 32, 32)
    with pytest.raises(RegistryError):
        default_input_shape("nope")


def test_register_model_adds_a_buildable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_registry, "_MODELS", Registry("model"))
    monkeypatch.setattr(model_registry, "_DEFAULT_INPUTS", {})

    @register_model("linear_probe", default_input_shape=(4,))
    def linear_probe(*, num_classes: int, input_shape: tuple[int, ...], bias: bool = True):
        return nn.Linear(input_shape[0], num_classes, bias=bias)

    assert available_models() == ["linear_probe"]
    model = build_model("linear_probe", num_classes=3, input_shape=(4,), bias=False)
    assert isinstance(model, nn.Linear) and model.bias is None
    with pytest.raises(ValueError, match="twice"):
        register_model("linear_probe")(linear_probe)


def test_register_model_rejects_builders_without_the_contract() -> None:
    with pytest.raises(TypeError, match="input_shape"):

        @register_model("broken")
        def broken(*, num_classes: int) -> nn.Module:
            return nn.Linear(1, num_classes)

    assert "broken" not in available_models()


@pytest.mark.parametrize(
    "model, shapes",
    [
        ("cnn5", [(3, 32, 32), (1, 28, 28), (3, 8, 8), (1, 13, 17)]),
        ("amc1d", [(2, 1024), (2, 128), (2, 77)]),
    ],
)
def test_flatten_size_arithmetic_matches_a_real_forward(model, shapes):
    import torch

    from pqcompress.models.shapes import output_shape

    for shape in shapes:
        built = build_model(model, num_classes=7, input_shape=shape)
        features = built.features.eval()
        with torch.no_grad():
            real = features(torch.zeros(1, *shape)).shape[1:]
        assert output_shape(features, shape) == tuple(real), (model, shape)


def test_building_on_the_meta_device_imports_no_compiler_stack():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from pqcompress.models import build_model\n"
        "with torch.device('meta'):\n"
        "    for name, shape in (('cnn5', (3, 32, 32)), ('amc1d', (2, 1024)), ('vgg16_cifar', (3, 32, 32))):\n"
        "        build_model(name, num_classes=10, input_shape=shape)\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
