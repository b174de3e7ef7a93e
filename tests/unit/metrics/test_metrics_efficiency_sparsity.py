"""Efficiency Score (docs/method.md §2 example) and model/tensor density."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pqcompress.errors import ConfigError
from pqcompress.metrics import (
    compression_ratio,
    efficiency_score,
    model_density,
    model_sparsity,
    tensor_density,
)


def test_efficiency_score_reproduces_grid_study_example():
    # docs/method.md: alpha .625, 4 bits, 79.20% vs base 87.21%, density 6.93% -> PE 104.9 (rho 1).
    pe = efficiency_score(79.20, 87.21, 0.0693, 4)
    assert pe == pytest.approx(104.84, abs=0.005)
    assert pe == pytest.approx(104.9, abs=0.1)
    # 6.93% is rounded; the study's unrounded density (e.g. 6.925%) gives all three figures
    # of its table to 0.1: 104.9 / 95.3 / 86.5 for rho 1 / 2 / 3.
    got = [round(efficiency_score(79.20, 87.21, 0.06925, 4, rho=r), 1) for r in (1, 2, 3)]
    assert got == [104.9, 95.3, 86.5]


def test_efficiency_score_units_and_edges():
    assert efficiency_score(0.792, 0.8721, 0.0693, 4) == pytest.approx(
        efficiency_score(79.2, 87.21, 0.0693, 4)
    )
    assert efficiency_score(0.9, 0.9, 1.0, 32) == 1.0  # dense float32 is "break even"
    assert efficiency_score(0.9, 0.9, 0.0, 8) == float("inf")
    assert compression_ratio(0.5, 8) == 0.125
    assert compression_ratio(0.5, 8, b_orig=16) == 0.25
    with pytest.raises(ConfigError, match="fraction"):
        efficiency_score(80, 87, 6.93, 4)
    with pytest.raises(ConfigError, match="acc_base"):
        efficiency_score(80, 0, 0.5, 4)


def test_tensor_density():
    assert tensor_density(torch.tensor([0.0, 1.0, 0.0, -2.0])) == 0.5
    assert tensor_density(torch.zeros(0)) == 1.0


def test_model_density_counts_conv_and_linear_weights_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].weight.zero_()  # 18 zeros
        model[3].weight.fill_(1.0)  # 16 nonzeros
        model[3].bias.zero_()  # biases are not counted by default
    assert model_density(model) == pytest.approx(16 / 34)
    assert model_sparsity(model) == pytest.approx(18 / 34)
    assert model_density(model, ["3.weight", "3.bias"]) == pytest.approx(16 / 18)
    with pytest.raises(KeyError, match=r"9\.weight"):
        model_density(model, ["9.weight"])
