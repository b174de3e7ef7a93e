"""Fixtures for the .pqz codec tests (helpers live in codec_support.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def tiny_conv():
    from pqcompress.testing.tiny import TinyConvNet

    torch.manual_seed(0)
    model = TinyConvNet()
    model.features[1].running_mean.normal_()
    model.features[1].num_batches_tracked.fill_(12)
    return model
