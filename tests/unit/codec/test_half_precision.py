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
