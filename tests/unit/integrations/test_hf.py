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
