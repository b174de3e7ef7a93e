"""train.amp: the forward pass under autocast (bf16, fp16 with a gradient scaler) while the
weights, the optimizer and P->Q stay float32; a run resumes with its scaler."""

from __future__ import annotations

import pytest
import torch

from pqcompress.config import CompressionConfig, DataConfig, ExperimentConfig, TrainConfig
from pqcompress.errors import ConfigError
from pqcompress.train import train


def _cfg(amp: str, epochs: int = 2) -> ExperimentConfig:
    return ExperimentConfig(
        model="cnn5",
        dataset="digits",
        data=DataConfig(val_fraction=0.1),
        train=TrainConfig(
            epochs=epochs,
            batch_size=64,
            lr=0.05,
            amp=amp,  # type: ignore[arg-type]
            threads=1,
        ),
        compression=CompressionConfig(bits=4, form="uniform", alpha=0.5),
    )


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_float32_weights_on_the_grid(amp: str) -> None:
    result = train(_cfg(amp), None, progress=False)
    assert result.status == "completed"
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]  # it learns (digits: chance is 10%)
    assert result.best_test_acc is not None and result.best_test_acc > 0.15
    model = result.model
    assert model is not None
    weight = model.features[0].weight
    assert weight.dtype == torch.float32
    levels = torch.unique(weight.detach()).numel()
    assert levels <= 2**4 - 1  # 4-bit uniform: at most 15 levels, zero included


def test_fp16_resume_keeps_the_scaler(tmp_path) -> None:
    whole = train(_cfg("fp16", epochs=2), tmp_path / "whole", progress=False)
    train(_cfg("fp16", epochs=1), tmp_path / "part", progress=False)
    ckpt = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert ckpt["amp"]["scale"] > 0  # the scaler's state is in the checkpoint
    part = train(_cfg("fp16", epochs=2), tmp_path / "part", resume=True, progress=False)
    assert part.history[-1]["test_acc"] == whole.history[-1]["test_acc"]


def test_unknown_amp_is_refused() -> None:
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp="fp8")  # type: ignore[arg-type]
