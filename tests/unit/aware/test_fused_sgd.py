"""PQSGD: SGD fused with the compressor's application matches SGD + Compressor.step()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pqcompress import CompressionConfig, Compressor
from pqcompress.aware import PQSGD
from pqcompress.ops import decode

from .aware_support import batches as _batches
from .aware_support import fit, net


def batches(n: int = 8):
    return _batches(n)


def run(cfg: CompressionConfig, fused: bool, sgd: dict, data) -> tuple[nn.Module, Compressor]:
    model = net()
    comp = Compressor(model, cfg)
    opt_cls = PQSGD if fused else torch.optim.SGD
    opt = opt_cls(model.parameters(), comp, **sgd) if fused else opt_cls(model.parameters(), **sgd)
    fit(model, opt, comp, data)
    return model, comp


SGD_SETTINGS = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    {"lr": 0.02, "momentum": 0.8, "dampening": 0.1, "weight_decay": 1e-3},
]


@pytest.mark.parametrize("sgd", SGD_SETTINGS)
@pytest.mark.parametrize("update", ["latent", "inplace"])
@pytest.mark.parametrize("form", ["exact", "uniform"])
def test_fused_step_matches_sgd_then_compressor(sgd, update, form):
    data = batches()
    cfg = CompressionConfig(alpha=0.5, bits=4, form=form, update=update)
    plain, pc = run(cfg, False, sgd, data)
    fused, fc = run(cfg, True, sgd, data)
    assert fc.steps == pc.steps == len(data) and fc.applications == pc.applications
    for (name, a), b in zip(plain.named_parameters(), fused.parameters()):
        # same method; at most last-bit differences of torch's fused multiply-add
        diff = (a - b).abs()
        close = diff <= 1e-5 * a.abs().clamp_min(1e-3)
        assert float(close.float().mean()) > 0.995, name
    for t in fc.targets:  # the fused result is still exactly on its grid
        res = fc.compressed(t.name)
        assert torch.equal(
            decode(res.codes, res.kind, res.scale, res.threshold, bits=4), t.param.detach()
        )


def test_float_targets_and_other_parameters_take_plain_sgd():
    data = batches(4)
    cfg = CompressionConfig(alpha=0.0, bits=32)  # nothing compressed: every target is "none"
    sgd = {"lr": 0.05, "momentum": 0.9}
    plain, _ = run(cfg, False, sgd, data)
    fused, _ = run(cfg, True, sgd, data)
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "cfg", [CompressionConfig(schedule="epoch"), CompressionConfig(mask="sticky")]
)
def test_unfusable_compressors_fall_back_to_plain_sgd(cfg):
    data = batches(4)
    sgd = {"lr": 0.05, "momentum": 0.9}
    plain, pc = run(cfg, False, sgd, data)
    fused, fc = run(cfg, True, sgd, data)
    assert not fc.can_fuse_sgd()
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.equal(a, b)
    assert fc.applications == pc.applications


def test_state_dict_is_sgds_so_checkpoints_move_between_them():
    data = batches(6)
    cfg = CompressionConfig(alpha=0.5, bits=8)
    sgd = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    model = net()
    comp = Compressor(model, cfg)
    opt = PQSGD(model.parameters(), comp, **sgd)
    for x, y in data[:3]:
        F.cross_entropy(model(x), y).backward()
        opt.step()
        comp.step()
        opt.zero_grad()
    state = opt.state_dict()
    plain = torch.optim.SGD(model.parameters(), **sgd)
    plain.load_state_dict(state)
    bufs = [plain.state[p]["momentum_buffer"] for p in model.parameters()]
    assert all(b is not None and b.shape == p.shape for b, p in zip(bufs, model.parameters()))
