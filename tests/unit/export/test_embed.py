"""ONNX graphs embedded in a .pqz file: stripped of the stored weights, rebuilt bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pqcompress import codec
from pqcompress.codec import ChecksumError, FormatError, portable
from pqcompress.data import make_loader
from pqcompress.errors import ConfigError

# the embedded graphs are built with onnx and quantized and run with ONNX Runtime: each test is
# skipped on its own when either is missing (both are imported inside the tests)
pytestmark = pytest.mark.requires("onnx", "onnxruntime")


def run(blob: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.fixture(scope="module")
def embedded(trained, tmp_path_factory):
    model, comp, data = trained
    calib = [x for x, _ in make_loader(data.train, 64, shuffle=False)][:2]
    path = tmp_path_factory.mktemp("embed") / "m.pqz"
    codec.save(
        model,
        path,
        comp,
        input_shape=(1, 8, 8),
        onnx="all",
        calibration=calib,
        integrity="sections",  # format 2: a digest per section (format 3: test_integrity)
    )
    return path


def test_float_graph_matches_pytorch_within_1e4(trained, embedded, test_batch) -> None:
    model, _, _ = trained
    x, _ = test_batch
    ref = model(x).detach().numpy()
    out = run(portable.onnx_model_bytes(embedded, int8=False), x.numpy())
    assert np.abs(out - ref).max() < 1e-4


def test_int8_graph_uses_the_trained_codes_and_agrees(trained, embedded, test_batch) -> None:
    model, comp, _ = trained
    x, _ = test_batch
    blob = portable.onnx_model_bytes(embedded)  # None: int8, every tensor is uniform 8-bit
    assert blob == portable.onnx_model_bytes(embedded, int8=True)
    ref = model(x).detach().numpy().argmax(1)
    assert (run(blob, x.numpy()).argmax(1) == ref).mean() >= 0.95
    import onnx
    from onnx import numpy_helper

    inits = {
        i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(blob).graph.initializer
    }
    codes = comp.compressed("classifier.0.weight").codes.numpy().astype(np.int8)
    assert any(a.dtype == np.int8 and np.array_equal(a, codes) for a in inits.values())


def test_stored_weights_are_not_duplicated_in_the_file(embedded) -> None:
    manifest = portable.read_manifest(embedded)
    assert manifest["format_version"] == 2
    graphs = {g["name"]: g for g in manifest["graphs"]}
    attached = {i["tensor"] for i in graphs["float32"]["initializers"]}
    assert {"features.0.weight", "classifier.0.weight"} <= attached
    assert graphs["int8"]["initializers"][0]["source"] == "codes"
    weights = sum(s["length"] for e in manifest["tensors"] for s in e["sections"])
    assert graphs["float32"]["length"] < weights  # the graph holds structure, not weights
    _, tensors = codec.read(embedded)  # the torch reader still loads a version 2 file
    assert set(tensors) == {e["name"] for e in manifest["tensors"]}


def test_tampered_graph_is_refused(embedded, tmp_path) -> None:
    manifest = portable.read_manifest(embedded)
    g = manifest["graphs"][0]
    data = bytearray(embedded.read_bytes())
    start = len(data) - manifest["payload_bytes"] + g["offset"]
    data[start + 5] ^= 0xFF
    bad = tmp_path / "bad.pqz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="graph"):
        portable.onnx_model_bytes(bad, int8=False)


def test_graphs_in_a_version_1_manifest_are_refused(embedded, tmp_path) -> None:
    from pqcompress.codec import container

    data = embedded.read_bytes()
    manifest, payload = container.split_file(data, "x")
    manifest["format_version"] = 1
    body = container.store_manifest(container.manifest_bytes(manifest))
    bad = tmp_path / "v1.pqz"
    bad.write_bytes(container.header(body, version=1) + body + bytes(payload))
    with pytest.raises(FormatError, match="graphs"):
        portable.read_manifest(bad)


def test_explicit_requests_need_what_they_use(trained, tmp_path) -> None:
    model, comp, _ = trained
    with pytest.raises(ConfigError, match="calibration"):
        codec.save(model, tmp_path / "a.pqz", comp, input_shape=(1, 8, 8), onnx="all")
    with pytest.raises(ConfigError, match=r"needs the model.s inputs: pass input_shape="):
        codec.save(model, tmp_path / "a.pqz", comp, onnx="float32")
    path = codec.save(model, tmp_path / "f.pqz", comp, input_shape=(1, 8, 8), onnx="auto")
    names = [g["name"] for g in portable.read_manifest(path)["graphs"]]
    assert names == ["float32"]  # auto without calibration: the float graph only
    with pytest.raises(codec.GraphError, match="int8"):
        portable.onnx_model_bytes(path, int8=True)
    assert portable.model_info(path)["default_graph"] == "float32"


def test_auto_falls_back_to_the_float_graph_when_int8_fails(trained, tmp_path, monkeypatch):
    from pqcompress.export import embed

    def broken(*args, **kwargs):
        raise RuntimeError("calibration exploded")

    monkeypatch.setattr(embed, "export_onnx", broken)
    model, comp, _ = trained
    calib = [torch.zeros(4, 1, 8, 8)]
    with pytest.warns(UserWarning, match="no int8 ONNX graph embedded: calibration exploded"):
        path = codec.save(
            model, tmp_path / "m.pqz", comp, input_shape=(1, 8, 8), onnx="auto", calibration=calib
        )
    assert [g["name"] for g in portable.read_manifest(path)["graphs"]] == ["float32"]
    with pytest.raises(RuntimeError, match="exploded"):  # an explicit request fails loudly
        codec.save(
            model, tmp_path / "n.pqz", comp, input_shape=(1, 8, 8), onnx="all", calibration=calib
        )
    assert not (tmp_path / "n.pqz").exists()


def test_transposed_and_small_initializers(tmp_path):
    """A MatMul weight stored as W.T is recorded with transpose=True and rebuilt exactly;
    initializers under MIN_STRIP_BYTES stay in the graph."""
    from onnx import TensorProto, helper, numpy_helper

    from pqcompress.export.embed import MIN_STRIP_BYTES, strip_initializers

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 32)).astype(np.float32)  # a Linear's (out, in) weight
    b = rng.standard_normal(4).astype(np.float32)  # too small to strip
    assert b.nbytes < MIN_STRIP_BYTES <= w.nbytes
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "wt"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["logits"]),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 16])],
        [
            numpy_helper.from_array(np.ascontiguousarray(w.T), "wt"),
            numpy_helper.from_array(np.resize(b, 16), "b"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    full = proto.SerializeToString()
    records = strip_initializers(proto, {"fc.weight": w}, {})
    assert records == [{"name": "wt", "tensor": "fc.weight", "source": "values", "transpose": True}]
    assert [i.name for i in proto.graph.initializer] == ["b"]
    record = {"name": "float32", "initializers": records}
    weights = portable.initializer_arrays(record, {"fc.weight": w}, {})
    blob = portable.attach_initializers(proto.SerializeToString(), weights)
    x = rng.standard_normal((3, 32)).astype(np.float32)
    assert np.array_equal(run(blob, x), run(full, x))
    # the library way: metadata-only placeholders, the weights handed to ONNX Runtime as
    # OrtValues (SessionOptions.add_external_initializers): same answers, no weight bytes
    import onnxruntime as ort

    light = portable.attach_placeholders(proto.SerializeToString(), weights)
    assert len(light) < len(full) - w.nbytes + 100
    opts = ort.SessionOptions()
    opts.add_external_initializers(
        list(weights), [ort.OrtValue.ortvalue_from_numpy(a) for a in weights.values()]
    )
    sess = ort.InferenceSession(light, sess_options=opts, providers=["CPUExecutionProvider"])
    assert np.array_equal(sess.run(None, {"input": x})[0], run(full, x))
