"""Every kind of bad file is refused with a FormatError subclass that names the problem."""

from __future__ import annotations

import hashlib
import os
import zlib

import pytest
import torch
from codec_support import OneTensor, StubCompressor, join, split

from pqcompress import codec
from pqcompress.codec import ChecksumError, DecompressionBombError, FormatError, VersionError
from pqcompress.codec import writer as writer_module
from pqcompress.codec.entropy import decompress
from pqcompress.errors import ConfigError, PQCError
from pqcompress.ops.pq import pq_compress


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    result = pq_compress(torch.randn(16, 12), 0.5, 4)
    model = OneTensor(result.values)
    # per-section digests (format 1), so that a test can forge one section and reach the
    # check it aims at; the whole-payload digest of format 3 is tested in test_integrity.py
    path = codec.save(
        model,
        tmp_path / "m.pqz",
        StubCompressor({"w": result}),
        codec="deflate",
        integrity="sections",
    )
    return path, model


def entry(manifest, name="w"):
    return next(e for e in manifest["tensors"] if e["name"] == name)


def test_errors_are_pqc_errors():
    for cls in (FormatError, ChecksumError, DecompressionBombError, VersionError):
        assert issubclass(cls, PQCError)


def test_not_a_pqz_file(tmp_path):
    p = tmp_path / "x.pqz"
    p.write_bytes(b"PK\x03\x04 this is a zip file, not a pqz file at all........................")
    with pytest.raises(FormatError, match=r"not a \.pqz file"):
        codec.read(p)
    with pytest.raises(FormatError, match="does not exist"):
        codec.read(tmp_path / "missing.pqz")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_file(good, keep):
    path, _ = good
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FormatError, match="truncated"):
        codec.read(path)


def test_trailing_bytes(good):
    path, _ = good
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(FormatError, match="unexpected bytes"):
        codec.read(path)


def test_bit_flip_in_payload(good):
    path, _ = good
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="checksum"):
        codec.read(path)


def test_tampered_payload_with_same_length(good):
    path, _ = good
    manifest, payload = split(path.read_bytes())
    s = entry(manifest)["sections"][-1]
    forged = bytearray(payload)
    forged[s["offset"]] ^= 0xFF
    path.write_bytes(join(manifest, bytes(forged)))
    with pytest.raises(ChecksumError, match="payload 'values' of tensor 'w'"):
        codec.read(path)


def test_tampered_manifest(good):
    path, _ = good
    data = bytearray(path.read_bytes())
    data[70] ^= 0x01  # inside the stored manifest; the header checksum no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="manifest"):
        codec.read(path)


@pytest.mark.parametrize("where", ["header", "manifest"])
def test_unknown_format_version(good, where):
    path, _ = good
    manifest, payload = split(path.read_bytes())
    if where == "manifest":
        manifest["format_version"] = 99
        data = join(manifest, payload)
    else:
        data = join(manifest, payload, version=2)
    path.write_bytes(data)
    with pytest.raises(VersionError, match="version"):
        codec.read(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(shape=[16, 13]),  # shape vs decoded size
        lambda e: e.update(nnz=e["nnz"] + 1),
        lambda e: e["sections"][-1].update(raw_length=e["sections"][-1]["raw_length"] - 1),
        lambda e: e.update(layout="csr"),
        lambda e: e.update(kind="prune"),
        lambda e: e.update(bits=3),
        lambda e: e.update(scale="0.1"),
        lambda e: e["sections"][-1].update(offset=10**9),
        lambda e: e["sections"][-1].update(codec="brotli"),
        lambda e: e.update(dtype="complex64"),
    ],
)
def test_manifest_disagrees_with_payloads(good, change):
    path, _ = good
    manifest, payload = split(path.read_bytes())
    change(entry(manifest))
    path.write_bytes(join(manifest, payload))
    with pytest.raises(FormatError, match="tensor 'w'"):
        codec.read(path)


def test_bitmap_count_disagrees(tmp_path):
    result = pq_compress(torch.randn(64), 1.0, 4)
    path = codec.save(
        OneTensor(result.values),
        tmp_path / "b.pqz",
        StubCompressor({"w": result}),
        layout="bitmap",
        codec="raw",
        integrity="sections",
    )
    manifest, payload = split(path.read_bytes())
    mask = entry(manifest)["sections"][0]
    forged = bytearray(payload)
    forged[mask["offset"]] ^= 0xFF  # flip 8 mask bits, keep the checksum valid
    mask["sha256"] = hashlib.sha256(
        bytes(forged[mask["offset"] : mask["offset"] + mask["length"]])
    ).hexdigest()
    path.write_bytes(join(manifest, bytes(forged)))
    with pytest.raises(FormatError, match="bitmap marks"):
        codec.read(path)


def test_decompression_bomb_is_bounded(good):
    path, _ = good
    manifest, payload = split(path.read_bytes())
    s = entry(manifest)["sections"][-1]
    bomb = zlib.compress(bytes(50 * 1024 * 1024), 9)  # 50 MiB of zeros in ~50 KB
    s.update(offset=len(payload), length=len(bomb), sha256=hashlib.sha256(bomb).hexdigest())
    manifest["payload_bytes"] = len(payload) + len(bomb)
    path.write_bytes(join(manifest, payload + bomb))
    with pytest.raises(DecompressionBombError, match="declared"):
        codec.read(path)


def test_declared_sizes_checked_against_the_limit_before_inflating(good):
    path, _ = good
    with pytest.raises(DecompressionBombError, match="limit"):
        codec.read(path, max_decoded_bytes=100)
    manifest, payload = split(path.read_bytes())
    big = entry(manifest)
    big["shape"] = [1 << 20, 1 << 20]  # 10^12 elements, consistent sizes would be terabytes
    path.write_bytes(join(manifest, payload))
    with pytest.raises(FormatError):
        codec.read(path)


@pytest.mark.parametrize("name", ["deflate", "lzma", "zstd", "raw"])
def test_each_codec_bounds_inflation(name):
    from pqcompress.codec.entropy import get_codec

    data = bytes(100_000)
    packed = get_codec(name).compress(data)
    assert decompress(name, packed, len(data)) == data
    with pytest.raises(FormatError):
        decompress(name, packed, len(data) - 1)
    with pytest.raises(FormatError):
        decompress(name, packed[: len(packed) // 2], len(data))


def test_failed_save_keeps_the_old_file(good, monkeypatch):
    path, model = good
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer_module.container, "manifest_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        codec.save(model, path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_bad_options_and_unfit_models(good, tmp_path):
    path, model = good
    with pytest.raises(ConfigError, match="layout"):
        codec.save(model, tmp_path / "x.pqz", layout="coo")
    with pytest.raises(ConfigError, match="codec"):
        codec.save(model, tmp_path / "x.pqz", codec="brotli")
    with pytest.raises(ConfigError, match="float_dtype"):
        codec.save(model, tmp_path / "x.pqz", float_dtype="int8")
    with pytest.raises(ConfigError, match="plain JSON"):
        codec.save(model, tmp_path / "x.pqz", metadata={"f": float("nan")})
    assert not (tmp_path / "x.pqz").exists()
    with pytest.raises(FormatError, match="custom model"):
        codec.load(path)
    with pytest.raises(FormatError, match="does not fit"):
        codec.load_into(OneTensor(torch.zeros(3)), path)


def test_codes_that_do_not_reproduce_the_tensor_are_refused(tmp_path):
    result = pq_compress(torch.randn(10), 0.5, 4)
    model = OneTensor(result.values + 1e-3)  # trained further after the last compression
    with pytest.raises(FormatError, match="bit for bit"):
        codec.save(model, tmp_path / "m.pqz", StubCompressor({"w": result}))


def test_bitmap_padding_bits_are_refused_by_both_readers(tmp_path):
    from pqcompress.codec import portable

    result = pq_compress(torch.randn(61), 1.0, 4)  # 61 elements: 3 padding bits
    path = codec.save(
        OneTensor(result.values),
        tmp_path / "b.pqz",
        StubCompressor({"w": result}),
        layout="bitmap",
        codec="raw",
        integrity="sections",
    )
    manifest, payload = split(path.read_bytes())
    mask = entry(manifest)["sections"][0]
    forged = bytearray(payload)
    forged[mask["offset"] + mask["length"] - 1] |= 0x80  # a padding bit
    mask["sha256"] = hashlib.sha256(
        bytes(forged[mask["offset"] : mask["offset"] + mask["length"]])
    ).hexdigest()
    path.write_bytes(join(manifest, bytes(forged)))
    with pytest.raises(FormatError, match="padding bits"):
        codec.read(path)
    with pytest.raises(FormatError, match="padding bits"):
        portable.read_arrays(path)
