"""A model trained on a GPU is saved, with its ONNX graphs, without being moved off its device;
mixed precision and channel P->Q run on CUDA. Skipped without a CUDA device (the device
check script runs them: benchmarks/gpu_checks.sh)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

import pqcompress as pqc
from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig
from pqcompress.models import build_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _trained(cfg: CompressionConfig, amp: torch.dtype | None = None):
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32)).cuda()
    comp = Compressor(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(16, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (16,), device="cuda")
    for _ in range(3):
        with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    return model.eval(), comp


def test_a_cuda_model_is_saved_with_graphs_and_stays_on_its_device(tmp_path) -> None:
    pytest.importorskip("onnx")
    model, comp = _trained(CompressionConfig(bits=8, form="uniform", alpha=0.5))
    x = torch.randn(4, 3, 32, 32)
    path = pqc.save(
        model, tmp_path / "m.pqz", comp, input_shape=(3, 32, 32), onnx="all", calibration=[x]
    )
    assert next(model.parameters()).is_cuda
    with torch.no_grad():
        ref = model(x.cuda()).cpu()
        assert (pqc.load(path)(x) - ref).abs().max() <= 1e-4


def test_bf16_autocast_keeps_float32_weights_on_the_grid() -> None:
    _, comp = _trained(CompressionConfig(bits=4, form="uniform"), amp=torch.bfloat16)
    for t in comp.targets:
        assert t.param.dtype == torch.float32
        assert torch.equal(comp.compressed(t.name).decode(), t.param.detach())


@pytest.mark.skipif(importlib.util.find_spec("torch_pruning") is None, reason="channels extra")
def test_channel_pruning_and_shrink_of_a_cuda_model(tmp_path) -> None:
    cfg = CompressionConfig(bits=8, form="uniform", granularity="channel", target_flops=0.5)
    model, comp = _trained(cfg)
    x = torch.randn(4, 3, 32, 32)
    path = pqc.save(model, tmp_path / "m.pqz", comp, input_shape=(3, 32, 32), shrink=True)
    with torch.no_grad():
        ref = model(x.cuda()).cpu()
        assert (pqc.load(path)(x) - ref).abs().max() <= 1e-4
