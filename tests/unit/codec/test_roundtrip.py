"""Round trips are bit-exact for every form, bit width, sparsity, layout and codec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from codec_support import OneTensor, StubCompressor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqcompress import codec
from pqcompress.aware.compressor import Compressor
from pqcompress.config import CompressionConfig
from pqcompress.ops.pq import pq_compress

FORMS = [
    ("pq", "exact"),
    ("pq", "literal"),
    ("pq", "uniform"),
    ("quantize", "exact"),
    ("prune", "exact"),
]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bit patterns (so -0.0 != 0.0 and NaN == NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(
        np.array_equal(
            a.reshape(-1).view(torch.uint8).numpy(), b.reshape(-1).view(torch.uint8).numpy()
        )
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    bits=st.integers(2, 16),
    alpha=st.sampled_from([0.0, 0.3, 1.0, 2.5]),
    form=st.sampled_from(FORMS),
    layout=st.sampled_from(["auto", "dense", "bitmap", "csr", "csc"]),
    codec_name=st.sampled_from(["auto", "raw", "deflate", "lzma", "zstd"]),
    seed=st.integers(0, 1000),
)
def test_any_tensor_round_trips_bit_exactly(
    tmp_path_factory, shape, bits, alpha, form, layout, codec_name, seed
) -> None:
    mode, f = form
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.1
    result = pq_compress(w, alpha, 32 if mode == "prune" else bits, form=f, mode=mode)
    model = OneTensor(result.values)
    comp = StubCompressor({"w": result})
    path = tmp_path_factory.mktemp("rt") / "m.pqz"
    codec.save(model, path, comp, layout=layout, codec=codec_name)
    manifest, tensors = codec.read(path)
    for name, t in model.state_dict().items():
        assert same_bits(tensors[name], t), name
    entry = next(e for e in manifest["tensors"] if e["name"] == "w")
    assert entry["kind"] == result.kind
    if layout != "auto":
        assert entry["layout"] == layout
    if result.codes is not None:
        assert entry["encoding"] == "codes" and entry["bits"] == bits


@pytest.mark.parametrize("layout", ["dense", "bitmap", "csr", "csc"])
def test_wide_literal_codes_and_empty_and_scalar_tensors(tmp_path, layout) -> None:
    w = torch.tensor([[0.0, 1e-6, 3.0], [-2.0, 0.0, 5e-7]])
    result = pq_compress(w, 0.9, 16, form="literal")  # huge codes: tiny step after a big beta
    model = OneTensor(result.values)
    model.register_buffer("empty", torch.zeros(0, 3))
    model.register_buffer("scalar", torch.tensor(-0.0))
    model.register_buffer("flags", torch.tensor([True, False, True]))
    model.register_buffer("bf16", torch.tensor([1.5, -0.0, 0.0], dtype=torch.bfloat16))
    path = codec.save(model, tmp_path / "m.pqz", StubCompressor({"w": result}), layout=layout)
    _, tensors = codec.read(path)
    for name, t in model.state_dict().items():
        assert same_bits(tensors[name], t), name


def test_real_compressor_model_round_trip(tmp_path, tiny_conv) -> None:
    comp = Compressor(tiny_conv, CompressionConfig(alpha=0.5, bits=4, update="inplace"))
    comp.apply()
    path = codec.save(tiny_conv, tmp_path / "m.pqz", comp)
    manifest, tensors = codec.read(path)
    state = tiny_conv.state_dict()
    assert set(tensors) == set(state)
    for name, t in state.items():
        assert same_bits(tensors[name], t), name
    kinds = {e["name"]: e["encoding"] for e in manifest["tensors"]}
    assert kinds["features.0.weight"] == "codes"
    assert kinds["features.1.running_var"] == "values"
    assert manifest["lossy"] is False and manifest["model"]["name"] == "custom"
    from pqcompress.testing.tiny import TinyConvNet

    other = codec.load_into(TinyConvNet(), path)
    for name, t in other.state_dict().items():
        assert same_bits(t, state[name])


def test_float16_option_is_lossy_and_says_so(tmp_path, tiny_conv) -> None:
    comp = Compressor(tiny_conv, CompressionConfig(alpha=0.5, bits=8, update="inplace"))
    comp.apply()
    path = codec.save(tiny_conv, tmp_path / "m.pqz", comp, float_dtype="float16")
    manifest, tensors = codec.read(path)
    assert manifest["lossy"] is True and manifest["float_dtype"] == "float16"
    state = tiny_conv.state_dict()
    assert same_bits(tensors["features.0.weight"], state["features.0.weight"])  # codes: exact
    bias = state["features.0.bias"]
    assert torch.equal(tensors["features.0.bias"], bias.half().float())
    assert tensors["features.0.bias"].dtype == torch.float32


def test_registry_model_load(tmp_path) -> None:
    from pqcompress.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("student_cnn", num_classes=2, input_shape=(1, 28, 28))
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4, update="inplace"))
    comp.apply()
    path = codec.save(
        model,
        tmp_path / "s.pqz",
        comp,
        model_name="student_cnn",
        num_classes=2,
        input_shape=(1, 28, 28),
        class_names=["normal", "pneumonia"],
        preprocessing={"mean": [0.5], "std": [0.25]},
        metadata={"note": "test"},
    )
    loaded = codec.load(path)
    assert not loaded.training
    for name, t in model.state_dict().items():
        assert same_bits(loaded.state_dict()[name], t), name
    x = torch.randn(2, 1, 28, 28)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    manifest, _ = codec.read(path)
    assert manifest["class_names"] == ["normal", "pneumonia"]
    assert manifest["preprocessing"]["mean"] == [0.5]


def test_auto_is_no_larger_than_any_fixed_choice(tmp_path, tiny_conv) -> None:
    comp = Compressor(tiny_conv, CompressionConfig(alpha=1.25, bits=4, update="inplace"))
    comp.apply()
    sizes = {}
    for layout in ["auto", "dense", "bitmap", "csr", "csc"]:
        p = codec.save(tiny_conv, tmp_path / f"{layout}.pqz", comp, layout=layout)
        sizes[layout] = p.stat().st_size
    assert sizes["auto"] <= min(sizes.values()) * 1.02


def test_inspect_rows_and_totals(tmp_path, tiny_conv) -> None:
    comp = Compressor(tiny_conv, CompressionConfig(alpha=0.5, bits=8, update="inplace"))
    comp.apply()
    path = codec.save(tiny_conv, tmp_path / "m.pqz", comp)
    report = codec.inspect(path)
    rows = {r["name"]: r for r in report["tensors"]}
    assert rows["features.0.weight"]["kind"] == "exact" and rows["features.0.weight"]["bits"] == 8
    t = report["totals"]
    assert t["file_bytes"] == path.stat().st_size
    assert t["params"] == sum(v.numel() for v in tiny_conv.state_dict().values())
    assert t["studies_bytes"] > 0 and t["entropy_bound_bytes"] > 0
    assert "studies_bytes" not in codec.inspect(path, baseline=False)["totals"]


@pytest.mark.parametrize("layout", ["dense", "bitmap"])
def test_literal_codes_wider_than_the_lookup_table(tmp_path, layout) -> None:
    w = torch.tensor([3.0, -2.9999, 0.001, 0.0, 2.95, -3.0])
    result = pq_compress(w, 1.2, 16, form="literal")  # beta close to max: codes ~1.3M
    model = OneTensor(result.values)
    path = codec.save(model, tmp_path / "m.pqz", StubCompressor({"w": result}), layout=layout)
    manifest, tensors = codec.read(path)
    assert next(e for e in manifest["tensors"] if e["name"] == "w")["symbols"]["width"] > 18
    assert same_bits(tensors["w"], model.w.detach())


def test_auto_codec_picks_a_fast_decoder_and_lzma_only_when_asked(tmp_path):
    """auto keeps the fastest-to-decode codec within 1% of the smallest among raw, deflate
    and zstd: never lzma, zstd for compressible sections, raw for incompressible ones."""
    from pqcompress.codec.entropy import auto_candidates

    assert "lzma" not in auto_candidates() and "zstd" in auto_candidates()
    g = torch.Generator().manual_seed(3)
    w = torch.randn(64, 256, generator=g) * 0.05
    result = pq_compress(w, 0.8, 4)  # sparse low-bit codes: compressible sections
    model = OneTensor(result.values)
    model.register_buffer("noise", torch.randn(4096, generator=g))  # float noise: no gain
    path = codec.save(model, tmp_path / "auto.pqz", StubCompressor({"w": result}))
    manifest, _ = codec.read(path)
    used = {e["name"]: {s["role"]: s["codec"] for s in e["sections"]} for e in manifest["tensors"]}
    assert "lzma" not in {c for roles in used.values() for c in roles.values()}
    assert used["w"]["values"] == "zstd"
    assert used["noise"]["values"] in ("raw", "zstd")
    lz = codec.save(model, tmp_path / "lzma.pqz", StubCompressor({"w": result}), codec="lzma")
    manifest, _ = codec.read(lz)
    assert {s["codec"] for e in manifest["tensors"] for s in e["sections"]} == {"lzma"}


@pytest.mark.parametrize("bits", [8, 4, 3])
@pytest.mark.parametrize("layout", ["dense", "bitmap"])
def test_large_tensors_decode_in_ranges_on_threads(tmp_path, monkeypatch, bits, layout) -> None:
    """Ranges of 65,536 elements on 3 threads (the last range partial, n not a multiple of
    8) give the same bits as the torch-free numpy decoder and the original tensor."""
    from pqcompress.codec import kernels, portable, tensorcode

    monkeypatch.setattr(tensorcode, "RANGE_ELEMENTS", 8 * kernels.CHUNK_BYTES)
    monkeypatch.setattr(tensorcode, "DECODE_THREADS", 3)
    monkeypatch.setattr(tensorcode, "_POOL", None)
    w = torch.randn(301, 1003, generator=torch.Generator().manual_seed(bits)) * 0.1
    result = pq_compress(w, 1.25, bits, form="uniform")
    model = OneTensor(result.values)
    path = codec.save(
        model, tmp_path / "m.pqz", StubCompressor({"w": result}), layout=layout, codec="raw"
    )
    _, tensors = codec.read(path)
    assert same_bits(tensors["w"], model.w.detach())
    _, arrays = portable.read_arrays(path)
    assert arrays["w"].tobytes() == tensors["w"].numpy().tobytes()


def test_cold_load_of_a_small_model_imports_no_numba_or_compiler_stack(tmp_path):
    """pqcompress.load of a small file decodes with numpy and builds the model on the meta
    device by shape arithmetic: numba, dynamo and sympy stay out of the process."""
    import subprocess
    import sys

    from pqcompress import CompressionConfig, Compressor
    from pqcompress import codec as pqz_codec
    from pqcompress.models import build_model

    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32), width=0.25)
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    comp.apply()
    path = pqz_codec.save(model, tmp_path / "m.pqz", comp, model_name="cnn5",
                          model_args={"width": 0.25}, num_classes=10, input_shape=(3, 32, 32))  # fmt: skip
    code = (
        "import sys, torch, pqcompress as pqc\n"
        f"m = pqc.load({str(path)!r})\n"
        "print(sorted(x for x in ('numba', 'torch._dynamo', 'sympy') if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
    numba_model = pqz_codec.load(path, decoder="numba")
    numpy_model = pqz_codec.load(path, decoder="numpy")
    for (name, a), b in zip(numba_model.state_dict().items(), numpy_model.state_dict().values()):
        assert a.dtype == b.dtype and torch.equal(a, b), name


def test_auto_decoder_uses_numba_for_big_files_and_bfloat16():
    from pqcompress.codec.reader import NUMBA_MIN_ELEMENTS, use_numba

    small = {"tensors": [{"dtype": "float32", "shape": [10, 10]}]}
    big = {"tensors": [{"dtype": "float32", "shape": [NUMBA_MIN_ELEMENTS]}]}
    bf16 = {"tensors": [{"dtype": "bfloat16", "shape": [4]}]}
    assert not use_numba(small) and use_numba(big) and use_numba(bf16)
    assert use_numba(small, "numba") and not use_numba(big, "numpy")
    with pytest.raises(ValueError, match="decoder"):
        use_numba(small, "fast")
