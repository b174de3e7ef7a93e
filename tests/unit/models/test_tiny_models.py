"""Tests for the tiny models in pqcompress.testing that other tests train."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models import count_parameters
from pqcompress.testing import TinyConvNet, TinyMLP


def test_tiny_mlp_flattens_digits() -> None:
    model = TinyMLP()
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert model(torch.randn(5, 64)).shape == (5, 10)
    assert 1_000 <= count_parameters(model) <= 10_000
    assert TinyMLP(in_features=4, hidden=3, num_classes=2)(torch.randn(2, 4)).shape == (2, 2)


def test_tiny_convnet_on_8x8() -> None:
    model = TinyConvNet(in_channels=1, num_classes=10)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert 1_000 <= count_parameters(model) <= 10_000
    kinds = {type(m) for m in model.modules()}
    assert {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Linear} <= kinds
    assert TinyConvNet(in_channels=3, num_classes=2)(torch.randn(2, 3, 8, 8)).shape == (2, 2)


def test_tiny_convnet_trains() -> None:
    torch.manual_seed(0)
    model = TinyConvNet()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    losses = []
    for _ in range(5):  # plain SGD by hand: torch.optim's first use costs over a second
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0]
