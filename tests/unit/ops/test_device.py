"""P->Q with every statistic and parameter on the device: the same values as the host path,
bit for bit, and not one read back to the host."""

from __future__ import annotations

import pytest
import torch

from pqcompress.ops.device import compress_device_
from pqcompress.ops.pq import compress_kind, tensor_stats

KINDS = [
    ("exact", 0.5, 4),
    ("exact", 0.0, 8),
    ("literal", 0.7, 3),
    ("uniform", 1.25, 8),
    ("uniform", 0.5, 2),
    ("quantize", 0.0, 4),
    ("prune", 0.8, 32),
]


@pytest.mark.parametrize("kind,alpha,bits", KINDS)
@pytest.mark.parametrize("rounding", ["nearest", "floor", "trunc", "stochastic"])
@pytest.mark.parametrize("latent", [False, True])
def test_device_path_equals_the_host_path_bit_for_bit(kind, alpha, bits, rounding, latent):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(37, 11, generator=g) * 0.1
    r = torch.randn(37, 11, generator=g) * 0.01 if latent else None
    full = w + r if r is not None else w
    ref = compress_kind(
        full, kind, alpha, bits, rounding, torch.Generator().manual_seed(7), tensor_stats(full)
    )
    p, res = w.clone(), (r.clone() if r is not None else None)
    applied = compress_device_(
        p, res, kind, alpha, bits, rounding, torch.Generator().manual_seed(7)
    )
    assert torch.equal(p, ref.values)
    if res is not None:
        assert torch.equal(res, full - ref.values)
    host = applied.host()
    assert (host.threshold, host.scale) == (ref.threshold, ref.scale)
    assert bool(applied.finite)


def test_non_finite_weights_are_left_as_they_were_and_flagged():
    w = torch.randn(8, 8)
    w[2, 3] = float("nan")
    p = w.clone()
    applied = compress_device_(p, None, "uniform", 0.5, 4)
    assert not bool(applied.finite)
    assert torch.equal(p.isnan(), w.isnan()) and torch.equal(p[~p.isnan()], w[~w.isnan()])


def test_no_value_is_read_back_to_the_host(monkeypatch):
    """What would synchronise with a GPU: a tensor turned into a Python number or bool, or
    copied to the CPU. None of it happens in an application."""

    def refuse(*_a, **_k):
        raise AssertionError("a host read inside the device path")

    w, r = torch.randn(64, 32), torch.zeros(64, 32)
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for kind, alpha, bits in KINDS:
        compress_device_(w.clone(), r.clone(), kind, alpha, bits, "stochastic")
