"""The compressor's torch backend (what runs on CUDA): the same results as the numba kernels,
tested on the CPU here and on a GPU where one exists (marker ``gpu``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pqcompress import CompressionConfig, Compressor
from pqcompress.aware import PQSGD


def net(device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    ).to(device)


def train(device: str, cfg: CompressionConfig, steps: int = 5) -> tuple[nn.Module, Compressor]:
    model = net(device)
    comp = Compressor(model, cfg)
    opt = PQSGD(model.parameters(), comp, lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 1, 8, 8, generator=g).to(device)
        y = torch.randint(0, 10, (16,), generator=g).to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    return model, comp


@pytest.mark.parametrize("update", ["latent", "inplace"])
@pytest.mark.parametrize("form", ["exact", "uniform"])
def test_torch_backend_on_cpu_matches_the_numba_kernels(update, form):
    """The torch backend, forced on the CPU, is the code path CUDA runs; PQSGD falls back to
    plain SGD for it. Its codes decode exactly and its values equal the numba path's."""
    kw = {"alpha": 0.5, "bits": 4, "form": form, "update": update}
    torch_model, torch_comp = train("cpu", CompressionConfig(backend="torch", **kw))
    numba_model, _ = train("cpu", CompressionConfig(backend="numba", **kw))
    assert not torch_comp.can_fuse()
    for t in torch_comp.targets:
        res = torch_comp.compressed(t.name)
        assert torch.equal(res.decode(), t.param.detach())
    for a, b in zip(torch_model.parameters(), numba_model.parameters()):
        close = (a - b).abs() <= 1e-5 * b.abs().clamp_min(1e-3)
        assert float(close.float().mean()) > 0.99


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_compresses_on_the_device():
    model, comp = train("cuda", CompressionConfig(alpha=0.5, bits=4))
    assert all(t.param.is_cuda for t in comp.targets)
    assert 0.0 < comp.density() < 1.0
    for t in comp.targets:
        res = comp.compressed(t.name)
        assert torch.equal(res.decode(), t.param.detach())
    cpu_model, _ = train("cpu", CompressionConfig(alpha=0.5, bits=4, backend="torch"))
    for a, b in zip(model.parameters(), cpu_model.parameters()):
        close = (a.cpu() - b).abs() <= 1e-4 * b.abs().clamp_min(1e-2)
        assert float(close.float().mean()) > 0.95


def test_torch_backend_sticky_masks_stats_and_checkpoints():
    """The device path's parameters stay tensors; the compressor reads them back only for
    reports, exports and checkpoints, and its sticky masks use the device threshold."""
    cfg = CompressionConfig(alpha=0.8, bits=4, backend="torch", mask="sticky")
    _, comp = train("cpu", cfg)
    stats = comp.stats()
    assert all(isinstance(s.threshold, float) and s.threshold > 0 for s in stats)
    dead = comp.dead[comp.targets[0].name]
    assert bool(dead.any())
    assert torch.equal(comp.targets[0].param.detach()[dead], torch.zeros(int(dead.sum())))
    state = comp.state_dict()
    assert all(isinstance(v["scale"], float) for v in state["applied"].values())
    twin = Compressor(net("cpu"), cfg)
    twin.load_state_dict(state)
    assert twin.applied.keys() == comp.applied.keys()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_divergence_is_found_within_check_every_steps():
    from pqcompress.errors import DivergedError

    model = net("cuda")
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    comp.apply()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(DivergedError, match=r"'0\.weight'"):
        for _ in range(Compressor.CHECK_EVERY):
            comp.step()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_step_does_not_synchronise():
    """torch's sync debug mode raises on a synchronising call: none happens in a step."""
    model = net("cuda")
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4, rounding="stochastic"))
    comp.apply()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(Compressor.CHECK_EVERY - 2):
            comp.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
