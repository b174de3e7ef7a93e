"""ONNX export: float32 parity, int8 QDQ with the trained codes, ORT sessions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pqcompress import codec
from pqcompress.data import make_loader
from pqcompress.errors import ConfigError
from pqcompress.export import export_onnx, load_onnx, native_int8, weight_codes
from pqcompress.metrics.classification import evaluate_model
from pqcompress.testing.tiny import TinyConvNet, TinyMLP

from .conftest import train_tiny

FLOAT_ATOL = 1e-4  # float32 graph vs PyTorch, absolute, on logits
INT8_AGREEMENT = 0.95  # int8 graph vs PyTorch: share of equal top-1 predictions


def _calibration(data, batches=4):
    loader = make_loader(data.train, 64, shuffle=False)
    return [x for (x, _), _ in zip(loader, range(batches))]


@pytest.mark.requires("onnx", "onnxruntime")
def test_float32_parity_dynamic_batch(tmp_path, trained, test_batch):
    model, _, _ = trained
    x, _ = test_batch
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, 8, 8))
    ort = load_onnx(path)
    with torch.no_grad():
        ref = model(x)
    for xb, rb in ((x, ref), (x[:1], ref[:1]), (x[:7], ref[:7])):
        out = ort(xb)
        assert out.shape == rb.shape
        assert torch.allclose(out, rb, atol=FLOAT_ATOL, rtol=0)


@pytest.mark.requires("onnx", "onnxruntime")
def test_float32_mlp(tmp_path):
    torch.manual_seed(1)
    model = TinyMLP().eval()
    x = torch.randn(5, 1, 8, 8)
    ort = load_onnx(export_onnx(model, tmp_path / "mlp.onnx", input_shape=(1, 8, 8)))
    assert torch.allclose(ort(x), model(x), atol=FLOAT_ATOL, rtol=0)


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_uses_trained_codes(tmp_path, trained, test_batch):
    model, comp, data = trained
    x, y = test_batch
    path = export_onnx(
        model,
        tmp_path / "q.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=_calibration(data),
        compressed=comp,
    )
    codes = weight_codes(path)
    for name in comp.names():
        r = comp.compressed(name)
        assert native_int8(r.kind, r.bits)
        k, scale = codes[f"{name}_quantized"]
        assert np.array_equal(k, r.codes.numpy().astype(np.int8)), name
        assert np.all(scale == np.float32(r.scale))
    ort = load_onnx(path)
    with torch.no_grad():
        ref = model(x)
    out = ort(x)
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
    assert agree >= INT8_AGREEMENT
    # accuracy through evaluate_model with the ORT wrapper as a module
    acc_ort = evaluate_model(ort, [(x, y)], "cpu")["accuracy"]
    acc_ref = evaluate_model(model, [(x, y)], "cpu")["accuracy"]
    assert acc_ort >= acc_ref - 0.03


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_codes_from_pqz_manifest(tmp_path, trained):
    model, comp, data = trained
    pqz = codec.save(model, tmp_path / "m.pqz", comp)
    manifest, _ = codec.read(pqz)
    fresh = TinyConvNet()
    codec.load_into(fresh, pqz)
    path = export_onnx(
        fresh.eval(),
        tmp_path / "q.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=_calibration(data, 2),
        compressed=manifest,
    )
    codes = weight_codes(path)
    for name in comp.names():
        k, _ = codes[f"{name}_quantized"]
        assert np.array_equal(k, comp.compressed(name).codes.numpy().astype(np.int8))
    # the path form reads the manifest itself
    path2 = export_onnx(
        fresh,
        tmp_path / "q2.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=_calibration(data, 2),
        compressed=pqz,
    )
    assert path2.is_file()


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_four_bit_codes_exact(tmp_path):
    model, comp, data = train_tiny(bits=4, epochs=2)
    path = export_onnx(
        model,
        tmp_path / "q4.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=_calibration(data, 2),
        compressed=comp,
    )
    codes = weight_codes(path)
    for name in comp.names():
        k, scale = codes[f"{name}_quantized"]
        assert np.abs(k).max() <= 7
        assert np.all(scale == np.float32(comp.compressed(name).scale))
        assert np.array_equal(k, comp.compressed(name).codes.numpy().astype(np.int8))


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_exact_form_layers_stay_float(tmp_path):
    model, comp, data = train_tiny(form="exact", bits=4, epochs=1)
    path = export_onnx(
        model,
        tmp_path / "qe.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=_calibration(data, 2),
        compressed=comp,
    )
    codes = weight_codes(path)
    for name in comp.names():
        assert f"{name}_quantized" not in codes  # decoded float weights, not re-quantized
    x = next(iter(make_loader(data.test, 64, shuffle=False)))[0]
    out = load_onnx(path)(x)
    agree = float((out.argmax(1) == model(x).argmax(1)).float().mean())
    assert agree >= INT8_AGREEMENT


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_plain_model(tmp_path):
    # a random (untrained) MLP has many weights near +-max: with full 8-bit weights ORT's
    # u8 x s8 kernels saturate on CPUs without VNNI; reduce_range (7-bit weights) avoids it
    torch.manual_seed(0)
    model = TinyMLP().eval()
    x = torch.randn(64, 1, 8, 8)
    path = export_onnx(
        model,
        tmp_path / "p.onnx",
        input_shape=(1, 8, 8),
        int8=True,
        calibration=[x[:32], x[32:]],
        reduce_range=True,
    )
    assert weight_codes(path)  # ORT quantized the weights itself
    with torch.no_grad():
        diff = (load_onnx(path)(x) - model(x)).abs().max()
    assert diff < 0.1, diff


@pytest.mark.requires("onnx", "onnxruntime")
def test_int8_needs_calibration(tmp_path):
    with pytest.raises(ConfigError):
        export_onnx(TinyMLP(), tmp_path / "x.onnx", input_shape=(1, 8, 8), int8=True)


@pytest.mark.requires("onnx", "onnxruntime")
def test_bad_compressed_argument(tmp_path):
    with pytest.raises(ConfigError):
        export_onnx(TinyMLP(), tmp_path / "x.onnx", input_shape=(1, 8, 8), compressed=42)


@pytest.mark.requires("onnx", "onnxruntime")
def test_manifest_that_does_not_fit_the_model(tmp_path, trained):
    model, comp, _ = trained
    manifest, _ = codec.read(codec.save(model, tmp_path / "m.pqz", comp))
    other = TinyConvNet()  # random weights: not on the manifest's grids
    with pytest.raises(ConfigError):
        export_onnx(other, tmp_path / "x.onnx", input_shape=(1, 8, 8), compressed=manifest)


@pytest.mark.requires("onnx", "onnxruntime")
def test_dynamic_int8_stores_int8_weights_and_agrees_with_torch(tmp_path, trained, test_batch):
    import onnx

    from pqcompress.export import export_onnx_dynamic_int8

    model, _, _ = trained
    x, _ = test_batch
    path = export_onnx_dynamic_int8(model, tmp_path / "dyn.onnx", input_shape=(1, 8, 8))
    graph = onnx.load(str(path)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "no int8 weights in the graph"
    assert {"ConvInteger", "MatMulInteger"} & {n.op_type for n in graph.node}
    ort = load_onnx(path)
    with torch.no_grad():
        ref, got = model(x).argmax(1), ort(x).argmax(1)
    assert (ref == got).float().mean() >= 0.97
