"""PostTrainConfig (x1..x7) and apply_posttrain, plus the torch quantization paths."""

from __future__ import annotations

import pytest
import torch

from pqcompress.errors import ConfigError
from pqcompress.posttrain import (
    PostTrainConfig,
    apply_posttrain,
    chosen_layers,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_float16,
)
from pqcompress.testing.tiny import TinyConvNet, TinyMLP


def _model(seed: int = 0):
    torch.manual_seed(seed)
    m = TinyConvNet()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        m.train()
        m(torch.randn(64, 1, 8, 8))
    return m.eval()


def test_from_vector_maps_indices_and_names():
    cfg = PostTrainConfig.from_vector([2, "random", 0.3, 0.6, 0, "both", 1], seed=5)
    assert cfg.linear_layers == "all" and cfg.conv_layers == "random"
    assert cfg.linear_amount == 0.3 and cfg.conv_amount == 0.6
    assert cfg.linear_params == "biases" and cfg.conv_params == "both"
    assert cfg.dynamic_int8 is True and cfg.seed == 5
    assert PostTrainConfig(**cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        PostTrainConfig.from_vector([0, 0, 0.1])


def test_validation():
    with pytest.raises(ConfigError):
        PostTrainConfig(linear_layers="some")
    with pytest.raises(ConfigError):
        PostTrainConfig(linear_amount=1.5)
    with pytest.raises(ConfigError):
        PostTrainConfig(dynamic_int8=True, quantize="fp16")
    PostTrainConfig(method="std", linear_amount=1.5)  # alpha may exceed 1


def test_chosen_layers():
    m = TinyMLP()
    assert chosen_layers(m, PostTrainConfig()) == {"linear": [], "conv": []}
    assert chosen_layers(m, PostTrainConfig(linear_layers="all"))["linear"] == [
        "classifier.0",
        "classifier.2",
    ]
    for seed in range(5):
        picked = chosen_layers(m, PostTrainConfig(linear_layers="random", seed=seed))["linear"]
        assert 1 <= len(picked) <= 2


def test_apply_posttrain_prunes_a_copy():
    m = _model()
    cfg = PostTrainConfig(
        linear_layers="all", linear_amount=0.5, conv_layers="all", conv_amount=0.25
    )
    out = apply_posttrain(m, cfg)
    assert out is not m
    assert float((m.classifier[0].weight == 0).float().mean()) == 0.0
    assert float((out.classifier[0].weight == 0).float().mean()) == 0.5
    assert float((out.features[0].weight == 0).float().mean()) == pytest.approx(0.25, abs=0.01)


def test_apply_posttrain_dynamic_int8_x7():
    m = _model()
    x = torch.randn(16, 1, 8, 8)
    out = apply_posttrain(m, PostTrainConfig(dynamic_int8=True))
    assert (
        "Dynamic" in type(out.classifier[0]).__name__
        or "quantized" in type(out.classifier[0]).__module__
    )
    with torch.no_grad():
        assert torch.allclose(out(x), m(x), atol=0.05)


def test_static_int8_and_fp16():
    m = _model()
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        ref = m(x)
        q = quantize_static_int8(m, [x[:16], x[16:]])
        assert (q(x) - ref).abs().max() < 0.1
        h = to_float16(m)
        out = h(x)
        assert out.dtype == torch.float32
        assert (out - ref).abs().max() < 0.02
        d = quantize_dynamic_int8(m)
        assert (d(x) - ref).abs().max() < 0.05
    with pytest.raises(ConfigError):
        apply_posttrain(m, PostTrainConfig(quantize="static"))
    s = apply_posttrain(m, PostTrainConfig(quantize="static"), calibration=[(x, None)])
    with torch.no_grad():
        assert (s(x) - ref).abs().max() < 0.1


def test_static_int8_round_trips_through_torchscript(tmp_path):
    # torch.save of the FX-converted module fails here; TorchScript is the torch way to save it
    import warnings

    m = _model()
    x = torch.randn(8, 1, 8, 8)
    q = quantize_static_int8(m, [x])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(q, x), str(tmp_path / "q.pt"))
        back = torch.jit.load(str(tmp_path / "q.pt"))
        assert torch.equal(back(x), q(x))
