"""Tests for count_parameters, count_macs and layer_macs on small hand-computed models."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.models import count_macs, count_parameters, layer_macs
from pqcompress.testing import TinyConvNet, TinyMLP


def test_count_parameters() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    assert count_parameters(model) == (4 * 3 + 3) + 2 * 3 + 3 * 2
    model[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 3 + 2 * 3 + 3 * 2


def test_count_parameters_counts_shared_weights_once() -> None:
    shared = nn.Linear(5, 5)
    assert count_parameters(nn.Sequential(shared, nn.ReLU(), shared)) == 30


def test_macs_of_tiny_convnet_by_hand() -> None:
    model = TinyConvNet(in_channels=1, num_classes=10)
    conv = (16 * 8 * 8) * (1 * 3 * 3)  # output elements x (in_channels x kernel)
    linear = 10 * (16 * 4 * 4)
    assert layer_macs(model, (1, 8, 8)) == {"features.0": conv, "classifier.0": linear}
    assert count_macs(model, (1, 8, 8)) == conv + linear == 11_776


def test_macs_of_conv1d_grouped_conv_and_mlp_by_hand() -> None:
    model = nn.Sequential(
        nn.Conv1d(2, 4, kernel_size=3),  # length 10 -> 8
        nn.Conv1d(4, 4, kernel_size=3, padding=1, groups=4),  # depthwise, length 8
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    assert count_macs(model, (2, 10)) == (4 * 8 * 2 * 3) + (4 * 8 * 1 * 3) + 32 * 5
    assert count_macs(TinyMLP(), (1, 8, 8)) == 64 * 32 + 32 * 10


def test_macs_leave_the_model_as_found() -> None:
    model = TinyConvNet()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, (1, 8, 8))
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.features[0]._forward_hooks


def test_macs_count_a_layer_called_twice_twice() -> None:
    shared = nn.Linear(6, 6)
    assert count_macs(nn.Sequential(shared, shared), (6,)) == 2 * 36
