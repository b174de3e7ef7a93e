"""Tests every registered model: output shapes, logits, names and determinism."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from pqcompress.models import available_models, build_model, default_input_shape

QUICK = [name for name in available_models() if name != "resnet50"]
# vgg16_cifar and resnet50 take ~0.4 s per build (test_model_sizes covers their options);
# resnet56 shares every code path with resnet20 at 3x the cost.
LIGHT = [name for name in QUICK if name not in ("vgg16_cifar", "resnet56")]
SEED = 1234


@functools.cache
def seeded(name: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """One model per name built under SEED on its default input, plus its initial state."""
    torch.manual_seed(SEED)
    model = build_model(name, input_shape=default_input_shape(name))
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", QUICK)
def test_output_shape_on_default_input_batch_2(name: str) -> None:
    model, _ = seeded(name)
    out = model(torch.randn(2, *default_input_shape(name)))
    assert out.shape == (2, 10)
    assert out.dtype == torch.float32


def test_resnet50_output_shape_batch_1() -> None:
    model, _ = seeded("resnet50")
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name", LIGHT)
def test_num_classes_sets_the_logit_count(name: str) -> None:
    shape = default_input_shape(name)
    model = build_model(name, num_classes=7, input_shape=shape)
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name", available_models())
def test_returns_logits_from_a_final_linear_layer(name: str) -> None:
    modules = list(seeded(name)[0].modules())
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in modules)
    last_linear = [m for m in modules if isinstance(m, nn.Linear)][-1]
    assert last_linear.out_features == 10


@pytest.mark.parametrize("name", available_models())
def test_names_are_readable(name: str) -> None:
    names = {n for n, _ in seeded(name)[0].named_modules()}
    assert {"features.0", "classifier.0"} <= names or {"conv1", "layer1.0.conv1", "fc"} <= names


@pytest.mark.parametrize("name", available_models())
def test_deterministic_under_manual_seed(name: str) -> None:
    _, first = seeded(name)
    torch.manual_seed(SEED)
    second = build_model(name, input_shape=default_input_shape(name)).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_different_seeds_give_different_weights() -> None:
    torch.manual_seed(1)
    a = build_model("cnn5").state_dict()
    torch.manual_seed(2)
    b = build_model("cnn5").state_dict()
    assert not torch.equal(a["features.0.weight"], b["features.0.weight"])


@pytest.mark.parametrize("name", ["cnn5", "student_cnn"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_small_cnns_take_digits_mnist_and_cifar_inputs(
    name: str, shape: tuple[int, int, int]
) -> None:
    model = build_model(name, num_classes=3, input_shape=shape)
    assert model(torch.randn(2, *shape)).shape == (2, 3)


@pytest.mark.parametrize("name", LIGHT)
def test_in_channels_follow_input_shape(name: str) -> None:
    shape = (1, *default_input_shape(name)[1:])
    model = build_model(name, input_shape=shape)
    first = next(m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d)))
    assert first.in_channels == 1
    assert model(torch.randn(2, *shape)).shape == (2, 10)
