"""What the compressor covers on models people bring: embeddings, recurrent and attention
weights, bare parameters by name; every floating parameter compressed or named with a reason."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import pqcompress as pqc
from pqcompress.errors import ConfigError
from pqcompress.models import build_model

ALL_KINDS = ("Linear", "Embedding", "LSTM", "GRU", "RNN", "MultiheadAttention")


class TokenModel(nn.Module):
    """Embedding, a 2-layer bidirectional LSTM, a GRU, an RNN, attention, a class token."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 16) * 0.1)
        self.lstm = nn.LSTM(16, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(32, 16, batch_first=True)
        self.rnn = nn.RNN(16, 16, batch_first=True)
        self.att = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        x = torch.cat([self.cls_token.expand(len(x), 1, 16), x], dim=1)
        x, _ = self.lstm(x)
        x, _ = self.gru(x)
        x, _ = self.rnn(x)
        x, _ = self.att(x, x, x)
        return self.head(self.norm(x[:, 0]))


def _covered(comp: pqc.Compressor) -> dict[str, str | None]:
    return {r.name: r.reason for r in comp.coverage()}


def test_every_weight_kind_is_compressed_when_its_type_is_named():
    model = TokenModel()
    cfg = pqc.CompressionConfig(bits=4, layer_types=ALL_KINDS, parameters=("cls_token",))
    comp = pqc.Compressor(model, cfg)
    reasons = _covered(comp)
    for name in (
        "emb.weight",
        "cls_token",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l1_reverse",
        "gru.weight_hh_l0",
        "rnn.weight_ih_l0",
        "att.in_proj_weight",
        "att.out_proj.weight",
        "head.weight",
    ):
        assert reasons[name] is None, (name, reasons[name])
    assert {t.name for t in comp.targets} == {n for n, r in reasons.items() if r is None}
    assert reasons["lstm.bias_ih_l0"] == "a bias: targets='weights'"
    assert "normalization" in str(reasons["norm.weight"])
    weights = sum(r.numel for r in comp.coverage() if "bias" not in r.name and "norm" not in r.name)
    done = sum(r.numel for r in comp.coverage() if r.compressed)
    assert done == weights  # 100% of the weight parameters covered


def test_recurrent_and_embedding_weights_train_under_pq_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TokenModel()
    cfg = pqc.CompressionConfig(bits=4, layer_types=ALL_KINDS, parameters=("cls_token",))
    comp = pqc.Compressor(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(5):
        ids, y = torch.randint(0, 50, (8, 7)), torch.randint(0, 3, (8,))
        loss = nn.functional.cross_entropy(model(ids), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.step()
    state = model.state_dict()
    for t in comp.targets:  # exact form: zero plus at most 2^b nonzero values
        levels = torch.unique(state[t.name]).numel()
        assert levels <= 2**4 + 1, (t.name, levels)  # on the 4-bit grid, LSTM weights included
        assert torch.equal(state[t.name], comp.compressed(t.name).decode().view_as(state[t.name]))
    pqc.save(model, tmp_path / "tok.pqz", compressor=comp)
    fresh = TokenModel()
    pqc.load_into(fresh, tmp_path / "tok.pqz")
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, state[name]), name  # bit-exact
    ids = torch.randint(0, 50, (2, 7))
    assert torch.equal(fresh.eval()(ids), model.eval()(ids))


def test_what_is_left_out_is_named_with_a_reason_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="pqcompress.aware")
    comp = pqc.Compressor(TokenModel(), pqc.CompressionConfig())  # the defaults: Linear, Conv
    reasons = _covered(comp)
    assert reasons["head.weight"] is None and reasons["att.out_proj.weight"] is None
    assert reasons["emb.weight"] == "module type Embedding is not in layer_types"
    assert reasons["lstm.weight_ih_l0"] == "module type LSTM is not in layer_types"
    assert "parameters=" in str(reasons["cls_token"])
    assert all(r.reason for r in comp.coverage() if not r.compressed)
    line = next(m for m in caplog.messages if m.startswith("compressing"))
    assert "left out" in line and "Embedding" in line and "LSTM" in line


def test_transformer_encoder_attention_in_proj_is_covered():
    layer = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), 2)
    comp = pqc.Compressor(
        layer, pqc.CompressionConfig(layer_types=("Linear", "MultiheadAttention"))
    )
    names = {t.name for t in comp.targets}
    assert "layers.0.self_attn.in_proj_weight" in names and "layers.1.linear2.weight" in names


@pytest.mark.parametrize(
    ("layer_types", "message"),
    [
        (("Linear", "BatchNorm2d"), "normalization layer"),
        (("Linear", "LayerNorm"), "normalization layer"),
        (("Linear", "Lstm"), "not a torch.nn module class"),
    ],
)
def test_layer_types_that_cannot_be_compressed_are_refused(layer_types, message):
    with pytest.raises(ConfigError, match=message):
        pqc.Compressor(TokenModel(), pqc.CompressionConfig(layer_types=layer_types))


def test_an_entry_that_matches_modules_but_compresses_nothing_is_an_error():
    cfg = pqc.CompressionConfig(layer_types=("Linear", "LSTM"), exclude=("lstm",))
    with pytest.raises(ConfigError, match="'LSTM' matches modules"):
        pqc.Compressor(TokenModel(), cfg)


def test_the_registry_cnns_select_what_they_always_did():
    model = build_model("cnn5", width=0.25)
    comp = pqc.Compressor(model, pqc.CompressionConfig())
    expected = [
        f"{name}.weight"
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]
    assert [t.name for t in comp.targets] == expected


def test_the_kernels_follow_pqcompress_threads_without_touching_torch(monkeypatch):
    numba = pytest.importorskip("numba")
    monkeypatch.setenv("PQCOMPRESS_THREADS", "1")
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        model = build_model("cnn5", width=0.25)
        comp = pqc.Compressor(model, pqc.CompressionConfig(bits=4))
        assert comp.threads == 1
        comp.apply()
        assert numba.get_num_threads() == 1  # this thread's kernels: the budget
        assert torch.get_num_threads() == torch_threads  # torch's pool: the user's
    finally:
        numba.set_num_threads(numba_threads)
