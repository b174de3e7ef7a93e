"""Format 3: one SHA-256 of the whole payload instead of one per section (small files), and
the per-section digests of formats 1/2 (large files, or integrity="sections")."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest
import torch
from codec_support import OneTensor, StubCompressor, join, split

from pqcompress import codec
from pqcompress.codec import ChecksumError, FormatError, container, portable
from pqcompress.errors import ConfigError
from pqcompress.ops.pq import pq_compress


def save(tmp_path, n=(16, 12), **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    result = pq_compress(torch.randn(*n), 0.5, 4)
    model = OneTensor(result.values)
    return codec.save(model, tmp_path / "m.pqz", StubCompressor({"w": result}), **kw), model


def stored_manifest(path):
    data = path.read_bytes()
    _, _, flags, mlen, _ = struct.unpack_from("<8sIIQ32s", data)
    raw = data[56 : 56 + mlen]
    return json.loads(zlib.decompress(raw) if flags & 1 else raw), mlen


def test_small_files_carry_one_payload_digest_and_round_trip(tmp_path) -> None:
    path, model = save(tmp_path)
    manifest, _ = stored_manifest(path)
    assert manifest["format_version"] == container.COMPACT_FORMAT_VERSION
    assert all("sha256" not in s for e in manifest["tensors"] for s in e["sections"])
    data = path.read_bytes()
    payload = data[len(data) - manifest["payload_bytes"] :]
    assert manifest["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    _, tensors = codec.read(path)
    assert torch.equal(tensors["w"], model.w)
    _, arrays = portable.read_arrays(path)
    assert torch.equal(torch.from_numpy(arrays["w"]), model.w)


def test_the_payload_digest_makes_the_manifest_smaller(tmp_path) -> None:
    compact, _ = save(tmp_path / "a", n=(40, 8, 3, 3))
    sections, _ = save(tmp_path / "b", n=(40, 8, 3, 3), integrity="sections")
    (_, m_compact), (_, m_sections) = stored_manifest(compact), stored_manifest(sections)
    assert m_compact < m_sections
    assert compact.stat().st_size < sections.stat().st_size


def test_large_payloads_keep_per_section_digests(tmp_path) -> None:
    torch.manual_seed(0)
    big = OneTensor(torch.randn(400_000))  # 1.6 MB of float32 values (~1.4 MB zstd): > 1 MiB
    path = codec.save(big, tmp_path / "big.pqz")
    manifest, _ = stored_manifest(path)
    assert manifest["format_version"] == container.FORMAT_VERSION
    assert "payload_sha256" not in manifest
    assert all("sha256" in s for e in manifest["tensors"] for s in e["sections"])
    assert torch.equal(codec.read(path)[1]["w"], big.w)


def test_a_flipped_payload_byte_is_a_checksum_error_in_both_readers(tmp_path) -> None:
    path, _ = save(tmp_path)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="the payload does not match its checksum"):
        codec.read(path)
    with pytest.raises(ChecksumError, match="the payload does not match its checksum"):
        portable.read_arrays(path)


def test_version_3_without_payload_digest_or_with_section_digests_is_refused(tmp_path) -> None:
    path, _ = save(tmp_path)
    manifest, payload = split(path.read_bytes())
    version = container.COMPACT_FORMAT_VERSION
    missing = dict(manifest)
    del missing["payload_sha256"]
    path.write_bytes(join(missing, payload, version=version))
    with pytest.raises(FormatError, match="needs payload_sha256"):
        codec.read(path)
    mixed = json.loads(json.dumps(manifest))
    mixed["tensors"][0]["sections"][0]["sha256"] = "0" * 64
    path.write_bytes(join(mixed, payload, version=version))
    with pytest.raises(FormatError, match="sha256 in a version-3 section"):
        codec.read(path)


def test_integrity_option_is_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match="integrity='md5' is not accepted"):
        save(tmp_path, integrity="md5")
    path, _ = save(tmp_path, integrity="payload")
    assert stored_manifest(path)[0]["format_version"] == 3
