"""Models trained in bfloat16 or float16 save as codes and load back bit for bit in their dtype."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pqcompress as pqc
from pqcompress.ops.pq import codes_from_values


def _mlp(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("form", ["exact", "uniform"])
def test_a_half_precision_model_round_trips_in_its_dtype(tmp_path, dtype, form):
    model = _mlp(dtype)
    comp = pqc.Compressor(model, pqc.CompressionConfig(bits=4, form=form))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(8, 16, generator=g).to(dtype), torch.randint(0, 4, (8,), generator=g)
        loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    pqc.save(model, tmp_path / "half.pqz", compressor=comp)
    fresh = _mlp(dtype)
    pqc.load_into(fresh, tmp_path / "half.pqz")
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert b.dtype == dtype and torch.equal(a, b), name


def test_half_precision_values_off_the_grid_are_still_refused():
    values = torch.tensor([0.1, 0.2, 0.33], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="not on the"):
        codes_from_values(values, "uniform", 4, 0.1, 0.0)


def test_float16_storage_keeps_a_tensor_beyond_its_range_in_float32(tmp_path):
    """``float_dtype="float16"`` halves the values that fit; a BatchNorm whose running_var
    is beyond float16's range (a collapsed layer: 1e6) stays float32, so the file loads and
    is exact there, instead of holding an inf that every reader refuses."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].running_var.copy_(torch.tensor([1e6, 2.0, 3.0, 7e4]))
    path = pqc.save(model, tmp_path / "m.pqz", float_dtype="float16")
    manifest, tensors = pqc.codec.read(path)
    entries = {e["name"]: e for e in manifest["tensors"]}
    assert entries["1.running_var"]["storage_dtype"] == "float32"
    assert entries["0.weight"]["storage_dtype"] == "float16" and manifest["lossy"]
    assert torch.equal(tensors["1.running_var"], model[1].running_var)
    fresh = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    pqc.load_into(fresh, path)
    assert torch.isfinite(fresh[1].running_var).all()
