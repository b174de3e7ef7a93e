"""The transformers callback: a tiny BERT (built from a config, no download) trains under P->Q
in the Hugging Face Trainer, checkpoints the compressor beside the Trainer's own, and saves a
.pqz that a fresh model loads bit for bit."""

from __future__ import annotations

import pytest
import torch

import pqcompress as pqc


def _bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(cfg)


class _Tokens(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {
            "input_ids": torch.randint(0, 64, (8,), generator=g),
            "attention_mask": torch.ones(8, dtype=torch.int64),
            "labels": torch.tensor(i % 2),
        }


@pytest.mark.slow
@pytest.mark.requires("transformers")
def test_a_tiny_bert_trains_under_pq_and_saves_a_pqz(tmp_path):
    from transformers import Trainer, TrainingArguments

    from pqcompress.integrations.hf import STATE_FILE, PQTrainerCallback

    callback = PQTrainerCallback(pqc.CompressionConfig(bits=4), save_path=tmp_path / "bert.pqz")
    model = _bert()
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
        save_strategy="epoch", report_to=[], use_cpu=True, logging_strategy="no",
        learning_rate=1e-3, disable_tqdm=True,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=_Tokens(), callbacks=[callback]).train()
    comp = callback.compressor
    assert comp is not None and comp.steps == 8 and comp.epochs == 2
    names = {t.name for t in comp.targets}
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    for t in comp.targets:
        assert torch.unique(t.param.data).numel() <= 2**4 + 1
    saved = list((tmp_path / "out").glob(f"checkpoint-*/{STATE_FILE}"))
    assert len(saved) == 2  # beside each of the Trainer's checkpoints
    fresh = pqc.load_into(_bert(), tmp_path / "bert.pqz")
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


@pytest.mark.requires("transformers", "onnx", "onnxruntime")
def test_a_tiny_bert_exports_and_serves_with_its_input_spec(tmp_path):
    """BERT's embeddings covered (coverage by parameter), saved with its two int64 inputs and
    the logits of its ModelOutput: the embedded float graph matches torch on another
    sequence length and the int8 graph agrees on the labels."""
    import numpy as np
    import onnxruntime as ort

    from pqcompress.codec.portable import model_info, onnx_model_bytes

    model = _bert().eval()
    comp = pqc.Compressor(
        model,
        pqc.CompressionConfig(
            form="uniform", bits=8, alpha=0.25, layer_types=("Linear", "Embedding")
        ),
    )
    comp.apply()
    left = {r.reason for r in comp.coverage() if not r.compressed}
    assert all("normalization" in r or "bias" in r for r in left), left
    specs = [
        pqc.InputSpec("input_ids", "int64", ("batch", "seq"), low=0, high=64),
        pqc.InputSpec("attention_mask", "int64", ("batch", "seq"), low=0, high=2),
    ]
    g = torch.Generator().manual_seed(0)
    calib = [
        {
            "input_ids": torch.randint(0, 64, (8, 12), generator=g),
            "attention_mask": torch.ones(8, 12, dtype=torch.long),
        }
        for _ in range(3)
    ]
    path = pqc.save(model, tmp_path / "bert.pqz", compressor=comp, inputs=specs, output="logits",
                    num_classes=2, onnx="all", calibration=calib)  # fmt: skip
    assert model_info(str(path))["inputs"] == [s.to_dict() for s in specs]
    ids = torch.randint(0, 64, (32, 14), generator=g)
    mask = torch.ones(32, 14, dtype=torch.long)
    mask[:4, 10:] = 0
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits.numpy()
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    (got,) = ort.InferenceSession(onnx_model_bytes(str(path), int8=False)).run(None, feed)
    assert np.abs(got - want).max() <= 1e-4
    (q,) = ort.InferenceSession(onnx_model_bytes(str(path), int8=True)).run(None, feed)
    assert (q.argmax(1) == want.argmax(1)).mean() >= 0.9
