"""Parameter counts and MACs of the built-in models against the sizes the studies report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pqcompress.models import build_model, count_macs, count_parameters
from pqcompress.models.vgg import VGG16_LAYOUT, features_out, make_features


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    return build_model("vgg16_cifar")


def within(value: int, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance * target


def test_vgg16_parameters(vgg16: nn.Module) -> None:
    assert within(count_parameters(vgg16), 33.6e6, 0.01)
    assert count_parameters(vgg16) == 33_638_218


def test_vgg16_has_no_batchnorm_or_dropout_by_default(vgg16: nn.Module) -> None:
    kinds = {type(m) for m in vgg16.modules()}
    assert nn.BatchNorm2d not in kinds and nn.Dropout not in kinds
    convs = [m for m in vgg16.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in vgg16.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [c for c in VGG16_LAYOUT if c != "M"]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (512, 4096),
        (4096, 4096),
        (4096, 10),
    ]


def test_vgg16_options_classes_and_channels() -> None:
    model = build_model(
        "vgg16_cifar", num_classes=7, input_shape=(1, 32, 32), batch_norm=True, dropout=0.5
    )
    assert model.features[0].in_channels == 1
    assert model.classifier[0].in_features == 512
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 7)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(norms) == 13
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)


def test_vgg16_macs_match_hand_computation(vgg16: nn.Module) -> None:
    expected, channels, size = 0, 3, 32
    for item in VGG16_LAYOUT:
        if item == "M":
            size //= 2
            continue
        expected += size * size * int(item) * channels * 9
        channels = int(item)
    expected += 512 * 4096 + 4096 * 4096 + 4096 * 10
    assert count_macs(vgg16, (3, 32, 32)) == expected == 332_111_872


def test_cnn5_size_and_cost(vgg16: nn.Module) -> None:
    model = build_model("cnn5")
    assert within(count_parameters(model), 2.1e6, 0.10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 4
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3
    assert count_macs(model, (3, 32, 32)) < count_macs(vgg16, (3, 32, 32)) / 5


def test_cnn5_width_scales_channels() -> None:
    model = build_model("cnn5", width=0.5, dropout=0.0)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 16, 32, 32, 64]
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_amc1d_matches_hand_count_and_halves_lengths() -> None:
    model = build_model("amc1d", num_classes=7, input_shape=(2, 1024))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 6 and all(c.out_channels == 40 and c.kernel_size == (4,) for c in convs)
    conv_part = (2 * 40 * 4 + 40) + 5 * (40 * 40 * 4 + 40) + 6 * 2 * 40
    dense_part = (40 * 16 * 128 + 128) + 2 * 128 + (128 * 128 + 128) + 2 * 128 + (128 * 7 + 7)
    assert count_parameters(model) == conv_part + dense_part
    assert model.features(torch.zeros(1, 2, 1024)).shape == (1, 40, 16)


@pytest.mark.parametrize("shape", [(3, 32, 64), (1, 47, 33)])
def test_vgg16_flatten_size_follows_larger_inputs(shape: tuple[int, int, int]) -> None:
    features = make_features(VGG16_LAYOUT, shape[0])
    with torch.no_grad():
        real = features(torch.zeros(1, *shape)).numel()
    assert features_out(VGG16_LAYOUT, shape) == real


@pytest.mark.parametrize("length", [64, 100, 512])
def test_amc1d_other_lengths(length: int) -> None:
    model = build_model("amc1d", num_classes=7, input_shape=(2, length))
    assert model(torch.randn(2, 2, length)).shape == (2, 7)


@pytest.mark.parametrize(("name", "target"), [("resnet20", 0.27e6), ("resnet56", 0.85e6)])
def test_cifar_resnet_parameters(name: str, target: float) -> None:
    model = build_model(name)
    assert within(count_parameters(model), target, 0.02)
    blocks = [n for n, _ in model.named_modules() if n.count(".") == 1 and n.startswith("layer")]
    assert len(blocks) == 3 * (3 if name == "resnet20" else 9)
    # Shortcut option B: a 1x1 projection where the stage changes shape, identity elsewhere.
    projections = [n for n, _ in model.named_modules() if n.endswith("downsample")]
    assert projections == ["layer2.0.downsample", "layer3.0.downsample"]
    assert isinstance(model.get_submodule("layer2.0.downsample.0"), nn.Conv2d)


def test_resnet50_parameters_and_stem() -> None:
    model = build_model("resnet50", input_shape=(1, 32, 32))
    assert model.conv1.in_channels == 1 and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # 23.5M for 3 channels; the stem conv has 64 * 9 fewer weights per missing channel.
    assert within(count_parameters(model) + 2 * 64 * 9, 23.5e6, 0.01)
    assert model.fc.in_features == 2048  # the batch-1 forward is in test_model_zoo


def test_student_cnn_parameters() -> None:
    model = build_model("student_cnn", num_classes=2, input_shape=(1, 28, 28))
    assert within(count_parameters(model), 30e3, 0.15)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4
    assert any(isinstance(m, nn.MaxPool2d) for m in model.modules())
