"""ONNX export of models that do not take one float tensor: named int64 inputs with dynamic
axes, dict and tuple outputs, a traced size that would break another length."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pqcompress as pqc
from pqcompress.errors import ConfigError
from pqcompress.export.onnx import ExportError, load_onnx

pytestmark = pytest.mark.requires("onnx", "onnxruntime")

SPECS = [
    pqc.InputSpec("input_ids", "int64", ("batch", "seq"), high=30),
    pqc.InputSpec("attention_mask", "int64", ("batch", "seq")),
]


class Pair(nn.Module):
    def __init__(self, out: str = "tensor") -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)
        self.out = out

    def forward(self, input_ids, attention_mask):
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1).float()
        logits = self.head(h.mean(1))
        if self.out == "dict":
            return {"logits": logits, "hidden": h, "nothing": None}
        if self.out == "tuple":
            return logits, h
        return logits


def _batch(n=3, seq=13):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 30, (n, seq), generator=g), torch.ones(n, seq, dtype=torch.long)


def test_two_int64_inputs_keep_names_dtypes_and_dynamic_axes(tmp_path):
    model = Pair().eval()
    path = pqc.export_onnx(model, tmp_path / "p.onnx", inputs=SPECS)
    ort = load_onnx(path)
    ins = ort.session.get_inputs()
    assert [(i.name, i.type, i.shape) for i in ins] == [
        ("input_ids", "tensor(int64)", ["batch", "seq"]),
        ("attention_mask", "tensor(int64)", ["batch", "seq"]),
    ]
    assert ort.session.get_outputs()[0].shape == ["batch", 3]
    ids, mask = _batch(seq=21)  # another length than traced
    assert torch.allclose(ort(ids, mask), model(ids, mask), atol=1e-5)


@pytest.mark.parametrize("out, output, names", [
    ("dict", None, ["logits", "hidden"]),
    ("dict", "hidden", ["hidden"]),
    ("tuple", None, ["output_0", "output_1"]),
    ("tuple", 0, ["logits"]),
])  # fmt: skip
def test_mapping_and_tuple_outputs(tmp_path, out, output, names):
    model = Pair(out).eval()
    path = pqc.export_onnx(model, tmp_path / "p.onnx", inputs=SPECS, output=output)
    ort = load_onnx(path)
    assert ort.output_names == names
    ids, mask = _batch()
    got = ort(ids, mask)
    want = model(ids, mask)
    first = got if torch.is_tensor(got) else got[names[0]]
    key = names[0] if out == "dict" else (output or 0)
    assert torch.allclose(first, want[key], atol=1e-5)
    # initializers keep the model's own state-dict names, not the selector's
    import onnx

    inits = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert "embed.weight" in inits and not any(n.startswith("model.") for n in inits)


def test_bad_output_and_input_requests_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not among the model's tensor outputs"):
        pqc.export_onnx(Pair("dict").eval(), tmp_path / "p.onnx", inputs=SPECS, output="x")
    with pytest.raises(ConfigError, match="not both"):
        pqc.export_onnx(Pair(), tmp_path / "p.onnx", inputs=SPECS, input_shape=(4,))
    with pytest.raises(ConfigError, match="inputs are unknown"):
        pqc.export_onnx(Pair(), tmp_path / "p.onnx")
    with pytest.raises(ExportError, match="fails on inputs"):
        pqc.export_onnx(Pair(), tmp_path / "p.onnx", input_shape=(4,))  # floats into an Embedding
    assert not (tmp_path / "p.onnx").exists()


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, input_ids):
        h = self.embed(input_ids)
        return self.attn(h, h, h, need_weights=False)[0].mean(1)


def test_a_traced_sequence_size_is_refused_and_a_fixed_one_works(tmp_path):
    """torch's tracer bakes nn.MultiheadAttention's sequence length into the graph: a
    dynamic 'seq' is refused with the way out; a fixed one exports and agrees."""
    model = Attention().eval()
    dyn = [pqc.InputSpec("input_ids", "int64", ("batch", "seq"))]
    with pytest.raises(ExportError, match=r"axis 'seq'.*give 'seq' a fixed size"):
        pqc.export_onnx(model, tmp_path / "a.onnx", inputs=dyn)
    fixed = [pqc.InputSpec("input_ids", "int64", ("batch", 16))]
    path = pqc.export_onnx(model, tmp_path / "a.onnx", inputs=fixed)
    ids = torch.randint(0, 30, (5, 16))
    assert torch.allclose(load_onnx(path)(ids), model(ids), atol=1e-5)


def test_int8_export_calibrates_on_named_batches(tmp_path):
    torch.manual_seed(0)
    model = Pair().eval()
    calib = [dict(zip(("input_ids", "attention_mask"), _batch(8, 10))) for _ in range(2)]
    path = pqc.export_onnx(model, tmp_path / "q.onnx", inputs=SPECS, int8=True, calibration=calib)
    ids, mask = _batch(16, 10)
    got = load_onnx(path)(ids, mask).numpy()
    want = model(ids, mask).detach().numpy()
    assert got.shape == want.shape and np.abs(got - want).mean() < 0.02
    with pytest.raises(ConfigError, match="lacks inputs"):
        pqc.export_onnx(model, tmp_path / "r.onnx", inputs=SPECS, int8=True,
                        calibration=[{"input_ids": ids}])  # fmt: skip


def test_save_records_the_spec_and_load_into_the_bare_model(tmp_path):
    model = Pair().eval()
    comp = pqc.Compressor(
        model, pqc.CompressionConfig(bits=4, alpha=0.5, layer_types=("Linear", "Embedding"))
    )
    comp.apply()
    path = pqc.save(model, tmp_path / "p.pqz", compressor=comp, inputs=SPECS, onnx="float32")
    from pqcompress.codec.portable import model_info, onnx_model_bytes

    info = model_info(str(path))
    assert info["inputs"] == [s.to_dict() for s in SPECS]
    import onnxruntime as ort

    s = ort.InferenceSession(onnx_model_bytes(str(path)))
    ids, mask = _batch()
    (out,) = s.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    again = pqc.load(path, model=Pair())
    assert np.abs(out - again(ids, mask).detach().numpy()).max() <= 1e-5
    with pytest.raises(ConfigError, match="not both"):
        pqc.save(model, tmp_path / "q.pqz", inputs=SPECS, input_shape=(3,))


def test_int8_graph_keeps_embedding_codes_and_leaves_recurrent_layers_float(tmp_path):
    """Uniform codes of an embedding become the Gather table of the int8 graph as they are
    (uint8, zero point 128); an LSTM's weights, re-laid out in its ONNX node, stay float."""
    from examples.sequence import TokenLSTM

    from pqcompress.export.onnx import weight_codes

    torch.manual_seed(0)
    model = TokenLSTM(4, vocab_size=30, dim=8, hidden=8, layers=1).eval()
    cfg = pqc.CompressionConfig(
        form="uniform", bits=4, alpha=0.3, layer_types=("Linear", "Embedding", "LSTM")
    )
    comp = pqc.Compressor(model, cfg)
    comp.apply()
    spec = [pqc.InputSpec("tokens", "int64", ("batch", "seq"))]
    calib = [torch.randint(0, 30, (8, 10)) for _ in range(2)]
    path = pqc.export_onnx(
        model, tmp_path / "l.onnx", inputs=spec, int8=True, calibration=calib, compressed=comp
    )
    codes = weight_codes(path)
    table, scale = next(v for k, v in codes.items() if k.startswith("embed.weight"))
    trained = comp.compressed("embed.weight")
    assert np.array_equal(table, trained.codes.numpy().astype(np.int8))
    assert float(scale) == pytest.approx(float(trained.scale))
    assert not any(k.startswith("lstm") for k in codes)
    ids = torch.randint(0, 30, (16, 12))
    got = load_onnx(path)(ids).numpy()
    assert (got.argmax(1) == model(ids).argmax(1).numpy()).mean() >= 0.9


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrent_weights_are_shared_with_the_embedded_graphs(tmp_path, cell):
    """ONNX lays an LSTM/GRU weight out [1, gates * hidden, in] with its gates reordered:
    the file stores it once and attaches it in that layout (source "values-gates")."""
    import onnxruntime as ort

    from pqcompress.codec.portable import onnx_graph_and_weights, onnx_model_bytes, read_manifest

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(30, 16)
            self.rnn = getattr(nn, cell)(16, 32, 2, batch_first=True)
            self.head = nn.Linear(32, 3)

        def forward(self, ids):
            return self.head(self.rnn(self.embed(ids))[0][:, -1])

    torch.manual_seed(0)
    model = Seq().eval()
    spec = [pqc.InputSpec("tokens", "int64", ("batch", "seq"))]
    path = pqc.save(model, tmp_path / "s.pqz", inputs=spec, onnx="float32")
    (graph,) = read_manifest(path)["graphs"]
    gated = {r["tensor"] for r in graph["initializers"] if r["source"] == "values-gates"}
    assert gated == {f"rnn.weight_{k}_l{i}" for k in ("ih", "hh") for i in (0, 1)}
    bare = pqc.save(model, tmp_path / "b.pqz", onnx="none").stat().st_size
    assert path.stat().st_size < bare + 16_000  # the graph holds no second copy of them
    ids = torch.randint(0, 30, (4, 9))
    want = model(ids).detach().numpy()
    (got,) = ort.InferenceSession(onnx_model_bytes(str(path))).run(None, {"tokens": ids.numpy()})
    assert np.abs(got - want).max() <= 1e-5
    blob, weights = onnx_graph_and_weights(str(path))
    opts = ort.SessionOptions()
    opts.add_external_initializers(
        list(weights), [ort.OrtValue.ortvalue_from_numpy(w) for w in weights.values()]
    )
    (ext,) = ort.InferenceSession(blob, opts).run(None, {"tokens": ids.numpy()})
    assert np.abs(ext - want).max() <= 1e-5


def test_a_tampered_gate_record_is_refused(tmp_path):
    from tests.unit.codec.codec_support import join, split

    from pqcompress.codec.errors import FormatError
    from pqcompress.codec.portable import onnx_model_bytes

    model = nn.Sequential(nn.Embedding(30, 16), nn.LSTM(16, 32, batch_first=True))
    model.forward = lambda ids: model[1](model[0](ids))[0]  # type: ignore[method-assign]
    path = pqc.save(
        model,
        tmp_path / "l.pqz",
        inputs=[pqc.InputSpec("t", "int64", ("batch", 5))],
        onnx="float32",
    )
    manifest, payload = split(path.read_bytes())
    for bad in ([0, 1, 2, 3], [2, 0, 1], "0312"):
        rec = next(
            r for r in manifest["graphs"][0]["initializers"] if r["source"] == "values-gates"
        )
        rec["gates"] = bad
        (tmp_path / "t.pqz").write_bytes(join(manifest, payload))
        with pytest.raises(FormatError, match="'gates' must be one of"):
            onnx_model_bytes(str(tmp_path / "t.pqz"))
