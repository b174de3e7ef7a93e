"""float16 post-training on token models: ids stay int64, outputs come back as float32."""

from __future__ import annotations

import torch
from torch import nn

from pqcompress.posttrain import to_float16


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        x = self.emb(input_ids) * attention_mask[..., None]
        return {"logits": self.head(x.mean(1)), "ids": input_ids}


def test_token_ids_stay_integers_and_outputs_return_as_float32():
    torch.manual_seed(0)
    model = Tokens().eval()
    ids, mask = torch.randint(0, 30, (2, 5)), torch.ones(2, 5, dtype=torch.int64)
    half = to_float16(model)
    out = half(ids, attention_mask=mask)
    assert out["logits"].dtype == torch.float32 and out["ids"].dtype == torch.int64
    assert torch.allclose(out["logits"], model(ids, mask)["logits"], atol=1e-2)


def test_float_inputs_are_still_run_in_half_precision():
    model = nn.Linear(4, 2).eval()
    half = to_float16(model)
    assert half.inner.weight.dtype == torch.float16
    assert half(torch.randn(3, 4)).dtype == torch.float32
