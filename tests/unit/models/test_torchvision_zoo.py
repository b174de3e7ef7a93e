"""torchvision teachers: one clear error without torchvision; built and adapted with it."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from pqcompress.errors import ConfigError, ModelError
from pqcompress.models.torchvision_zoo import torchvision_teacher

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed here")
def test_without_torchvision_the_error_says_what_to_install() -> None:
    with pytest.raises(ModelError, match=r"needs torchvision.*pqcompress\[vision\]"):
        torchvision_teacher("resnet18", num_classes=2, input_shape=(1, 28, 28))


def test_unknown_architecture_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'resnet9000' is not offered"):
        torchvision_teacher("resnet9000", num_classes=2, input_shape=(1, 28, 28))


def test_pqcompress_recipe_refuses_pretrained_without_torchvision_teacher() -> None:
    from pqcompress.studies.distill_recipe import TeacherSpec

    with pytest.raises(ConfigError, match="torchvision teachers only"):
        TeacherSpec(model="cnn5", freeze=2)


@pytest.mark.requires("torchvision")
def test_grayscale_input_is_adapted_and_the_head_replaced() -> None:
    model = torchvision_teacher("resnet18", num_classes=2, input_shape=(1, 28, 28), size=32)
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 2)


@pytest.mark.requires("torchvision")
def test_pretrained_weights_are_never_downloaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError, match="not in the local cache"):
        torchvision_teacher("resnet18", num_classes=2, input_shape=(1, 28, 28), pretrained=True)
