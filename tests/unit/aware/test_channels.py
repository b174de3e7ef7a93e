"""Channel granularity: coupled channel masks (residual adds, depthwise convs), the channel
and MAC targets, latent and sticky channels, and shrinking to the kept channels."""

from __future__ import annotations

import copy
import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pqcompress.aware.channels import shrink
from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig, LayerOverride
from pqcompress.errors import ConfigError, ShrinkError
from pqcompress.models import build_model

needs_tp = pytest.mark.skipif(
    importlib.util.find_spec("torch_pruning") is None, reason="needs the channels extra"
)


def _train(model: nn.Module, cfg: CompressionConfig, steps: int = 3, **kw) -> Compressor:
    torch.manual_seed(0)
    comp = Compressor(model, cfg, **kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    return comp


def _zero_rows(t: torch.Tensor, dim: int) -> set[int]:
    rows = t.detach().movedim(dim, 0).reshape(t.shape[dim], -1)
    return {int(i) for i in torch.nonzero(rows.abs().sum(dim=1) == 0).flatten()}


def _mobilenet() -> nn.Module:
    from examples.mobilenet import build

    return build(num_classes=10, input_shape=(3, 32, 32), width=0.25)


@needs_tp
def test_residual_stage_channels_are_pruned_together() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_density=0.5)
    _train(model, cfg)
    sd = dict(model.named_parameters())
    # the first stage's residual stream: the stem and every block's second conv add into it
    stem = _zero_rows(sd["conv1.weight"], 0)
    assert stem, "the solved alpha prunes channels of the first stage"
    for block in ("layer1.0", "layer1.1", "layer1.2"):
        assert _zero_rows(sd[f"{block}.conv2.weight"], 0) == stem
        assert _zero_rows(sd[f"{block}.bn2.weight"], 0) >= stem
        assert _zero_rows(sd[f"{block}.conv1.weight"], 1) >= stem  # consumers' inputs
    assert stem <= _zero_rows(sd["bn1.bias"], 0)
    assert _zero_rows(sd["layer2.0.downsample.0.weight"], 1) >= stem
    # inside a block: conv1's output channels, its BatchNorm and conv2's inputs together
    inner = _zero_rows(sd["layer1.0.conv1.weight"], 0)
    assert inner and inner <= _zero_rows(sd["layer1.0.conv2.weight"], 1)
    assert inner <= _zero_rows(sd["layer1.0.bn1.weight"], 0)


@needs_tp
def test_depthwise_channels_follow_the_expanding_conv() -> None:
    model = _mobilenet()
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_density=0.5)
    _train(model, cfg)
    block = model.features[4].block  # expand 1x1, BN, ReLU6, depthwise 3x3, BN, ReLU6, project
    expand, depthwise, project = block[0], block[3], block[6]
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
    gone = _zero_rows(expand.weight, 0)
    assert gone
    assert _zero_rows(depthwise.weight, 0) == gone
    assert _zero_rows(project.weight, 1) >= gone


@needs_tp
@pytest.mark.parametrize("key", ["target_density", "target_flops"])
def test_channel_and_mac_targets_are_met_and_shrinking_realises_them(key: str) -> None:
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(bits=4, form="uniform", granularity="channel", **{key: 0.5})
    comp = _train(model, cfg)
    plan = comp.plan
    assert plan is not None
    if key == "target_density":
        assert plan.channel_share(comp._keep) == pytest.approx(0.5, abs=0.03)
    else:
        assert plan.mac_share(comp._keep) == pytest.approx(0.5, abs=0.02)
    predicted = plan.mac_share(comp._keep)
    summary = comp.channel_summary()
    assert summary is not None and summary["mac_share"] == predicted
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    twin = copy.deepcopy(model)
    report = shrink(twin, x)
    assert report.macs_after / report.macs_before == pytest.approx(predicted, rel=1e-6)
    assert report.macs_after == pytest.approx(summary["macs_after"], rel=1e-6)
    assert report.params_after < report.params_before
    assert (twin(x) - ref).abs().max() <= 1e-4


@needs_tp
def test_ramp_grows_the_channel_pruning() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(
        bits=8, form="uniform", granularity="channel", target_flops=0.4, ramp_steps=16
    )
    comp = _train(model, cfg, steps=1)
    early = comp.plan.mac_share(comp._keep)  # type: ignore[union-attr]
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    for _ in range(16):  # the alpha is solved again every Compressor.SOLVE_EVERY steps
        opt.step()
        comp.step()
    late = comp.plan.mac_share(comp._keep)  # type: ignore[union-attr]
    assert early > late
    assert late == pytest.approx(0.4, abs=0.02)


@needs_tp
def test_latent_keeps_the_pruned_channels_float_weights() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_density=0.5)
    comp = Compressor(model, cfg, example_inputs=torch.randn(1, 3, 32, 32))
    before = model.features[0].weight.detach().clone()
    comp.apply()
    w = model.features[0].weight.detach()
    gone = sorted(_zero_rows(w, 0))
    assert gone
    latent = comp.latent_weights()["features.0.weight"]
    assert torch.equal(latent[gone], before[gone])  # the float weights live on, in the residual


@needs_tp
def test_sticky_channels_stay_pruned() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(
        bits=8, form="uniform", granularity="channel", alpha=0.9, mask="sticky", update="inplace"
    )
    comp = Compressor(model, cfg, example_inputs=torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        model.features[0].weight[:4].mul_(0.01)  # four weak filters
    comp.apply()
    assert _zero_rows(model.features[0].weight, 0) >= {0, 1, 2, 3}
    with torch.no_grad():
        model.features[0].weight[:4] = 1.0  # they come back strong
    comp.apply()
    assert _zero_rows(model.features[0].weight, 0) >= {0, 1, 2, 3}
    state = comp.state_dict()
    fresh = Compressor(copy.deepcopy(model), cfg, example_inputs=torch.randn(1, 3, 32, 32))
    fresh.load_state_dict(state)
    fresh.apply()
    assert _zero_rows(fresh.model.features[0].weight, 0) >= {0, 1, 2, 3}


@needs_tp
def test_groups_that_stay_dense_say_why() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(
        bits=8,
        form="uniform",
        granularity="channel",
        alpha=0.5,
        overrides=(LayerOverride("features.3", skip=True),),
    )
    comp = _train(model, cfg, steps=1)
    records = {r["root"]: r for r in comp.channel_records()}
    assert records["classifier.9"]["reason"] == "its channels are the model's outputs"
    assert "features.3.weight" in records["features.3"]["reason"]
    assert "not compressed" in records["features.3"]["reason"]
    assert records["features.0"]["reason"] is None


@needs_tp
def test_channel_granularity_needs_inputs() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(granularity="channel")
    comp = Compressor(model, cfg)
    with pytest.raises(ConfigError, match="example_inputs"):
        comp.apply()  # no forward ran, no example given


def test_without_the_extra_channel_granularity_is_one_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # the extra not installed
    with pytest.raises(ConfigError, match=r"pqcompress\[channels\]"):
        Compressor(model, CompressionConfig(granularity="channel"))


def test_config_refusals() -> None:
    with pytest.raises(ConfigError, match="target_flops needs granularity='channel'"):
        CompressionConfig(target_flops=0.5)
    with pytest.raises(ConfigError, match="not both"):
        CompressionConfig(granularity="channel", target_flops=0.5, target_density=0.5)
    with pytest.raises(ConfigError, match="mode='quantize'"):
        CompressionConfig(granularity="channel", mode="quantize")
    with pytest.raises(ConfigError, match="granularity"):
        CompressionConfig(granularity="filter")  # type: ignore[arg-type]


class ScaledByBuffer(nn.Module):
    """Multiplies conv1's output by a per-channel buffer: Torch-Pruning does not resize
    buffers, so removing conv1's channels breaks the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x)) * self.scale.view(1, -1, 1, 1)
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


@needs_tp
def test_a_model_the_surgery_cannot_follow_is_one_error_naming_the_layer() -> None:
    model = ScaledByBuffer()
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_density=0.5)
    _train(model, cfg)
    assert _zero_rows(model.conv1.weight, 0)
    with pytest.raises(ShrinkError, match="'conv1'"):
        shrink(copy.deepcopy(model).eval(), torch.randn(2, 3, 32, 32))


@needs_tp
def test_a_checkpoint_keeps_the_parked_float_weights() -> None:
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    cfg = CompressionConfig(bits=4, granularity="channel", target_flops=0.3)
    comp = _train(model, cfg, steps=2)
    latent = comp.latent_weights()
    twin = copy.deepcopy(model)
    fresh = Compressor(twin, cfg, example_inputs=torch.randn(1, 3, 32, 32))
    fresh.load_state_dict(comp.state_dict())
    for name, w in fresh.latent_weights().items():
        assert torch.equal(w, latent[name]), name
    fresh.step()  # parks them again: still the same float weights, and the same channels
    for name, w in fresh.latent_weights().items():
        assert torch.equal(w, latent[name]), name
    assert torch.equal(twin.features[0].weight, model.features[0].weight)
