"""modulation-tokens: I/Q frames as integer tokens, trained on, exported with their spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pqcompress.config import CompressionConfig, DataConfig, ExperimentConfig, TrainConfig
from pqcompress.data.modulation import iq_tokens
from pqcompress.data.registry import build_dataset
from pqcompress.errors import ConfigError
from pqcompress.inputspec import InputSpec

SMALL = {"frames_per_class_snr": 4, "frame_length": 32, "snr_min": 0, "snr_max": 10, "snr_step": 5}


def test_tokens_are_int64_ids_below_the_vocabulary():
    b = build_dataset("modulation-tokens", DataConfig(options=SMALL, val_fraction=0.2))
    assert b.input_dtype == "int64" and b.input_shape == (32,)
    x, _ = b.train.fetch(b.train.rows[:5])
    assert (
        x.dtype == torch.int64 and x.shape == (5, 32) and int(x.min()) >= 0 and int(x.max()) < 256
    )
    assert b.preprocessing["vocab_size"] == 256 and "mean" not in b.preprocessing
    assert b.input_specs() == (InputSpec("tokens", "int64", ("batch", 32), low=0, high=256),)
    assert len(b.train) + len(b.val) + len(b.test) == 8 * 3 * 4


def test_iq_tokens_bins_i_and_q():
    x = np.array([[[-9.0, 0.0, 1.49, 9.0], [-9.0, 0.0, -1.49, 9.0]]])
    assert iq_tokens(x, 4, 1.5).tolist() == [[0, 2 * 4 + 2, 3 * 4 + 0, 15]]


def test_bad_token_options_fail_before_generating():
    with pytest.raises(ConfigError, match="levels"):
        build_dataset("modulation-tokens", DataConfig(options={"levels": 1}))
    with pytest.raises(ConfigError, match="unknown data option 'level'"):
        build_dataset("modulation-tokens", DataConfig(options={"level": 8}))


@pytest.mark.requires("onnx", "onnxruntime")
def test_a_token_run_exports_with_its_input_spec(tmp_path):
    """A user's token model trained under P->Q on tokens (embedding and attention covered),
    then exported from its run directory: the .pqz records the spec and embeds graphs that
    take int64 ids named 'tokens'."""
    import onnxruntime as ort

    from pqcompress.codec import load
    from pqcompress.codec.portable import model_info, onnx_model_bytes
    from pqcompress.codec.run_export import export_run
    from pqcompress.train.trainer import train

    cfg = ExperimentConfig(
        model="tests.unit.data.test_modulation_tokens:tiny_transformer",
        dataset="modulation-tokens",
        data=DataConfig(options=SMALL, val_fraction=0.2),
        train=TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=1e-3, best_on="val"),
        compression=CompressionConfig(
            form="uniform",
            bits=8,
            alpha=0.5,
            layer_types=("Linear", "Embedding", "MultiheadAttention"),
        ),
    )
    train(cfg, tmp_path / "run", progress=False)
    path = export_run(tmp_path / "run", tmp_path / "m.pqz", onnx="all")
    info = model_info(str(path))
    assert info["inputs"] == [
        {"name": "tokens", "dtype": "int64", "shape": ["batch", 32], "low": 0, "high": 256}
    ]
    assert [g["name"] for g in info["graphs"]] == ["float32", "int8"]
    model = load(path, model=tiny_transformer(num_classes=8))
    ids = torch.randint(0, 256, (4, 32))
    with torch.no_grad():
        want = model(ids).numpy()
    (out,) = ort.InferenceSession(onnx_model_bytes(str(path), int8=False)).run(
        None, {"tokens": ids.numpy()}
    )
    assert np.abs(out - want).max() <= 1e-4


def tiny_transformer(num_classes: int = 8, input_shape=(32,)):
    from examples.sequence import TokenTransformer

    return TokenTransformer(num_classes, max_len=input_shape[0], dim=16, heads=2, layers=1, ff=32)
