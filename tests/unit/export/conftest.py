"""A TinyConvNet trained for a few epochs on digits (uniform 8-bit P->Q), shared per module."""

from __future__ import annotations

import pytest
import torch

from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig, DataConfig
from pqcompress.data import build_dataset, make_loader
from pqcompress.testing.tiny import TinyConvNet


def train_tiny(form: str = "uniform", bits: int = 8, epochs: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    data = build_dataset("digits", DataConfig(augment=False, val_fraction=0.0))
    model = TinyConvNet()
    comp = Compressor(model, CompressionConfig(form=form, bits=bits, alpha=0.3, backend="torch"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(epochs):
        model.train()
        for x, y in make_loader(data.train, 64, shuffle=True, seed=seed, epoch=epoch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            comp.step()
    comp.apply()
    return model.eval(), comp, data


@pytest.fixture(scope="module")
def trained():
    return train_tiny()


@pytest.fixture(scope="module")
def test_batch(trained):
    _, _, data = trained
    x, y = next(iter(make_loader(data.test, 256, shuffle=False)))
    return x, y
