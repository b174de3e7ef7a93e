"""Token models written as user code: a small transformer encoder and an LSTM classifier.

Both take integer token ids ``[batch, seq]`` (int64), e.g. the ``modulation-tokens`` data set
(I/Q samples as 256 tokens). Nothing in them knows about pqcompress:
``pqcompress train --model examples.sequence:transformer`` imports them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TokenTransformer(nn.Module):
    """Token and learned position embeddings, a pre-norm ``nn.TransformerEncoder``, mean
    pooling over the (unmasked) positions and a linear head. ``attention_mask`` (1 = a real
    token, 0 = padding) is optional, as in BERT-style models."""

    def __init__(
        self,
        num_classes: int,
        vocab_size: int = 256,
        max_len: int = 128,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)  # a bare parameter
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        h = self.embed(tokens) + self.position[: tokens.shape[1]]
        pad = None if attention_mask is None else attention_mask == 0
        h = self.norm(self.encoder(h, src_key_padding_mask=pad))
        if attention_mask is None:
            pooled = h.mean(1)
        else:
            keep = attention_mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.head(pooled)


class TokenLSTM(nn.Module):
    """Token embedding, a two-layer LSTM, and a linear head on its outputs averaged over time
    (``pool="mean"``, the default) or on the last one (``pool="last"``)."""

    def __init__(
        self,
        num_classes: int,
        vocab_size: int = 256,
        dim: int = 32,
        hidden: int = 64,
        layers: int = 2,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)
        self.pool = pool

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out.mean(1) if self.pool == "mean" else out[:, -1])


def transformer(
    num_classes: int = 8, input_shape: tuple[int, ...] = (128,), **kwargs: int
) -> TokenTransformer:
    """Factory for ``--model examples.sequence:transformer`` (``max_len`` from the data)."""
    kwargs.setdefault("max_len", int(input_shape[0]))
    return TokenTransformer(num_classes, **kwargs)


def lstm(num_classes: int = 8, input_shape: tuple[int, ...] = (128,), **kwargs: Any) -> TokenLSTM:
    """Factory for ``--model examples.sequence:lstm`` (any sequence length)."""
    return TokenLSTM(num_classes, **kwargs)
