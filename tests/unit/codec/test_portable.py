"""The torch-free reader: same arrays as the torch reader, same refusals, no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from codec_support import OneTensor, StubCompressor, join, split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqcompress import codec
from pqcompress.codec import ChecksumError, FormatError, GraphError, VersionError, portable
from pqcompress.ops.pq import pq_compress

FORMS = [("pq", "exact"), ("pq", "literal"), ("pq", "uniform"), ("quantize", "exact")]


def same(a: np.ndarray, t: torch.Tensor) -> bool:
    b = t.numpy() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy()
    if t.dtype == torch.bfloat16:
        a = a.view(np.int16)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    bits=st.integers(2, 16),
    alpha=st.sampled_from([0.0, 0.3, 1.0, 2.5]),
    form=st.sampled_from([*FORMS, ("prune", "exact")]),
    layout=st.sampled_from(["dense", "bitmap", "csr", "csc"]),
    float16=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_arrays_equal_the_torch_readers_bit_for_bit(
    tmp_path_factory, shape, bits, alpha, form, layout, float16, seed
) -> None:
    mode, f = form
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.1
    result = pq_compress(w, alpha, 32 if mode == "prune" else bits, form=f, mode=mode)
    model = OneTensor(result.values)
    model.register_buffer("f16", torch.randn(shape, generator=g).half())
    path = tmp_path_factory.mktemp("pt") / "m.pqz"
    codec.save(
        model,
        path,
        StubCompressor({"w": result}),
        layout=layout,
        codec="deflate",
        float_dtype="float16" if float16 else "float32",
    )
    manifest, arrays = portable.read_arrays(path)
    for decoder in ("numba", "auto"):  # the fused kernels, and what a small file gets
        ref_manifest, tensors = codec.read(path, decoder=decoder)
        assert manifest == ref_manifest and set(arrays) == set(tensors)
        for name, t in tensors.items():
            assert same(arrays[name], t), (decoder, name)


def test_wide_codes_bool_bf16_empty_scalar(tmp_path) -> None:
    w = torch.tensor([[0.0, 1e-6, 3.0], [-2.0, 0.0, 5e-7]])
    result = pq_compress(w, 0.9, 16, form="literal")  # symbols wider than the lookup table
    model = OneTensor(result.values)
    model.register_buffer("empty", torch.zeros(0, 3))
    model.register_buffer("scalar", torch.tensor(-0.0))
    model.register_buffer("flags", torch.tensor([True, False, True]))
    model.register_buffer("bf16", torch.tensor([1.5, -0.0, 0.0], dtype=torch.bfloat16))
    for layout in ("dense", "bitmap", "csr"):
        path = codec.save(model, tmp_path / f"{layout}.pqz", StubCompressor({"w": result}))
        _, arrays = portable.read_arrays(path)
        _, tensors = codec.read(path, decoder="numba")
        for name, t in tensors.items():
            assert same(arrays[name], t), name


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    result = pq_compress(torch.randn(16, 12), 0.5, 4, form="uniform")
    model = OneTensor(result.values)
    path = codec.save(
        model,
        tmp_path / "m.pqz",
        StubCompressor({"w": result}),
        codec="deflate",
        input_shape=(12,),
        onnx="none",
        integrity="sections",  # forged sections keep valid digests (format 3: test_integrity)
    )
    return path


def test_refuses_what_the_torch_reader_refuses(good, tmp_path) -> None:
    data = good.read_bytes()
    bad = tmp_path / "bad.pqz"
    bad.write_bytes(data[:-3])
    with pytest.raises(FormatError, match="truncated"):
        portable.read_manifest(bad)
    bad.write_bytes(b"GIF89a" + data[6:])
    with pytest.raises(FormatError, match="magic"):
        portable.read_manifest(bad)
    manifest, payload = split(data)
    bad.write_bytes(join(manifest, payload, version=99))
    with pytest.raises(VersionError, match="99"):
        portable.model_info(bad)
    flipped = bytearray(data)
    flipped[-2] ^= 0x10  # inside the last payload
    bad.write_bytes(bytes(flipped))
    portable.read_manifest(bad)  # the manifest is intact ...
    with pytest.raises(ChecksumError, match="checksum"):
        portable.read_arrays(bad)  # ... the payload is not
    manifest["tensors"][0]["nnz"] = 10**9
    bad.write_bytes(join(manifest, payload))
    with pytest.raises(FormatError, match="nnz"):
        portable.read_arrays(bad)


def test_model_info_is_json_and_counts_zeros(good) -> None:
    info = portable.model_info(good)
    json.dumps(info, allow_nan=False)
    _, tensors = codec.read(good)
    zeros = sum(int((t == 0).sum()) for t in tensors.values())
    params = sum(t.numel() for t in tensors.values())
    assert info["params"] == params and info["sparsity"] == pytest.approx(zeros / params)
    assert info["compression"]["forms"] == {"uniform": 1}
    assert info["compression"]["bits"] == 4 and info["compression"]["all_native_int8"]
    assert info["input_shape"] == [12] and info["architecture"]["name"] == "custom"
    assert info["file_bytes"] == good.stat().st_size and info["graphs"] == []
    assert info["default_graph"] is None and info["format_version"] == 1


def test_no_embedded_graph_is_a_clear_error(good) -> None:
    with pytest.raises(GraphError, match=r"onnx='float32', input_shape=") as info:
        portable.onnx_model_bytes(good)
    assert "pqcompress export RUN_DIR" in str(info.value)  # both ways to get a graph


@pytest.mark.requires("onnx")
def test_auto_graphs_without_an_input_shape_say_so(tmp_path) -> None:
    with pytest.warns(UserWarning, match="embeds no graph: the model's inputs are unknown"):
        codec.save(torch.nn.Linear(4, 2), tmp_path / "m.pqz", onnx="auto")


@pytest.mark.requires("onnx", "onnxruntime")  # the file embeds a graph, run by ORT
def test_reading_never_imports_torch_or_numba(tmp_path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    result = pq_compress(model[0].weight.detach(), 0.5, 8, form="uniform")
    model[0].weight.data.copy_(result.values)
    path = codec.save(
        model,
        tmp_path / "m.pqz",
        StubCompressor({"0.weight": result}),
        input_shape=(12,),
        onnx="float32",
    )
    script = f"""
import sys
import numpy as np
from pqcompress.codec import portable
p = {str(path)!r}
portable.read_manifest(p)
_, arrays = portable.read_arrays(p)
info = portable.model_info(p)
blob = portable.onnx_model_bytes(p)
import onnxruntime as ort
s = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
out = s.run(None, {{"input": np.ones((2, 12), np.float32)}})[0]
print(sorted(m for m in ("torch", "numba") if m in sys.modules), out.shape, info["graphs"][0]["name"])
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("]")[0] == "[" and "(2, 3) float32" in run.stdout


def _int8_file(tmp_path, codec_name: str = "auto"):
    from pqcompress.aware.compressor import Compressor
    from pqcompress.config import CompressionConfig
    from pqcompress.testing.tiny import TinyConvNet

    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = TinyConvNet().eval()
    comp = Compressor(model, CompressionConfig(bits=8, form="uniform", alpha=1.0))
    comp.apply()
    calib = [torch.randn(4, 1, 8, 8) for _ in range(2)]
    return codec.save(
        model,
        tmp_path / "u8.pqz",
        comp,
        input_shape=(1, 8, 8),
        onnx="all",
        calibration=calib,
        codec=codec_name,
        integrity="payload",
    )


def test_int8_graph_weights_come_from_codes_alone(tmp_path) -> None:
    """The int8 graph's coded weights are decoded straight to int8 (no float values built)
    and equal what the full decode gives."""
    path = _int8_file(tmp_path)
    manifest = portable.read_manifest(path)
    record = next(g for g in manifest["graphs"] if g["name"] == "int8")
    _, weights = portable.onnx_graph_and_weights(path, int8=True)
    codes_for = {i["tensor"] for i in record["initializers"] if i["source"] == "codes"}
    assert codes_for  # the test exercises the codes-only path
    _, arrays, codes, _, _ = portable._decode(path, 1 << 30, codes_for)
    expected = portable.initializer_arrays(record, arrays, codes)
    assert expected.keys() == weights.keys()
    for k, v in expected.items():
        assert v.dtype == weights[k].dtype and np.array_equal(v, weights[k]), k


def test_a_code_no_writer_produces_is_refused_without_values(tmp_path) -> None:
    path = _int8_file(tmp_path, codec_name="raw")
    manifest, payload = split(path.read_bytes())
    graph = next(g for g in manifest["graphs"] if g["name"] == "int8")
    coded = {i["tensor"] for i in graph["initializers"] if i["source"] == "codes"}
    entry = next(e for e in manifest["tensors"] if e["name"] in coded)
    section = next(s for s in entry["sections"] if s["role"] == "values")
    assert section["codec"] == "raw" and entry["symbols"]["width"] == 8
    data = bytearray(payload)
    data[section["offset"]] = 0xFF  # symbol 255: code 128, outside 8-bit uniform's -127..127
    path.write_bytes(join(manifest, bytes(data)))
    with pytest.raises(FormatError, match="NaN or inf"):
        portable.onnx_graph_and_weights(path, int8=True)
