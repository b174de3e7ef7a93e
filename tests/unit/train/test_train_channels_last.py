"""train.channels_last: convolution weights in the channels_last layout, compressed by the
fused kernels in memory order, saved and resumed like any other run."""

from __future__ import annotations

import dataclasses

import torch

import pqcompress as pqc
from pqcompress.config import CompressionConfig, DataConfig, ExperimentConfig, TrainConfig
from pqcompress.train import train


def _cfg(channels_last: bool, epochs: int = 2) -> ExperimentConfig:
    return ExperimentConfig(
        model="cnn5",
        dataset="digits",
        data=DataConfig(val_fraction=0.1),
        train=TrainConfig(
            epochs=epochs, batch_size=64, lr=0.05, threads=1, channels_last=channels_last
        ),
        compression=CompressionConfig(bits=4, alpha=0.5),
    )


def test_channels_last_trains_the_same_run_and_saves_a_loadable_file(tmp_path) -> None:
    plain = train(_cfg(False), tmp_path / "plain", progress=False)
    cl = train(_cfg(True), tmp_path / "cl", progress=False)
    assert cl.status == "completed" and cl.model is not None and plain.model is not None
    conv = cl.model.features[3].weight  # a conv with several input channels
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # the same method in another memory order (the convolutions sum in another order, and
    # early training amplifies last bits, so only the first epoch's mean loss is compared)
    first = [r.history[0]["train_loss"] for r in (plain, cl)]
    assert abs(first[0] - first[1]) < 0.01 * first[0]
    assert cl.history[-1]["train_loss"] < cl.history[0]["train_loss"]
    pqc.save(cl.model, tmp_path / "cl.pqz")
    back = pqc.load(tmp_path / "cl.pqz")
    for (name, a), b in zip(cl.model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name


def test_channels_last_resumes_bit_identically(tmp_path) -> None:
    whole = train(_cfg(True), tmp_path / "whole", progress=False)
    train(dataclasses.replace(_cfg(True), train=dataclasses.replace(_cfg(True).train, epochs=1)),
          tmp_path / "part", progress=False)  # fmt: skip
    part = train(_cfg(True), tmp_path / "part", resume=True, progress=False)
    assert part.history[-1]["test_acc"] == whole.history[-1]["test_acc"]
    assert whole.model is not None and part.model is not None
    for a, b in zip(whole.model.parameters(), part.model.parameters()):
        assert torch.equal(a, b)
