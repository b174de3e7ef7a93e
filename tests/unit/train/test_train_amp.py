"""train.amp: the forward pass under autocast (bf16, fp16 with a gradient scaler) while the
weights, the optimizer and P->Q stay float32; a run resumes with its scaler."""

from __future__ import annotations

import pytest
import torch

from pqcompress.config import CompressionConfig, DataConfig, ExperimentConfig, TrainConfig
from pqcompress.errors import ConfigError
from pqcompress.train import loop, train


def _cfg(amp: str, epochs: int = 2, steps: int | None = None) -> ExperimentConfig:
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
            max_steps_per_epoch=steps,
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


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_where_the_device_computes_it_natively(monkeypatch, native) -> None:
    monkeypatch.setattr(loop, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert loop.resolve_amp("auto", cpu) == ("bf16" if native else "off")
    for asked in ("off", "bf16", "fp16"):
        assert loop.resolve_amp(asked, cpu) == asked


def test_bf16_on_a_cpu_without_it_is_warned_about_and_auto_records_what_ran(
    monkeypatch, caplog
) -> None:
    """bf16 autocast on a CPU without AVX512-BF16/AMX ran 15x slower than float32 on a
    2-core AVX2 EPYC: asked for, it runs with one warning; ``auto`` trains in float32 there,
    and the result says which precision ran."""
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    with caplog.at_level("WARNING", logger="pqcompress.train"):
        asked = train(_cfg("bf16", epochs=1, steps=2), None, progress=False)
    warned = [r.getMessage() for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert len(warned) == 1 and "train.amp: auto or off" in warned[0]
    assert asked.amp == "bf16"
    caplog.clear()
    with caplog.at_level("WARNING", logger="pqcompress.train"):
        auto = train(_cfg("auto", epochs=1, steps=2), None, progress=False)
    assert not [r for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert auto.amp == "off" and auto.to_dict()["amp"] == "off"
    # and where it ran, so run times compare across machines
    assert auto.machine["device"] == "cpu" and auto.machine["threads"] == 1
    assert auto.machine["cpu"] and auto.to_dict()["machine"] == auto.machine
    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    assert train(_cfg("auto", epochs=1, steps=2), None, progress=False).amp == "bf16"
