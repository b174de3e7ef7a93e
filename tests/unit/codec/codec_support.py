"""Helpers for the .pqz codec tests: a one-tensor module, a stand-in compressor, file surgery."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import torch
from torch import nn

from pqcompress.codec import container
from pqcompress.ops.pq import PQResult


class OneTensor(nn.Module):
    """A parameter ``w`` plus a float buffer and an int64 buffer, like a conv + BN layer."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.register_buffer("stat", torch.linspace(-1, 1, 5))
        self.register_buffer("count", torch.tensor(7, dtype=torch.int64))


class StubCompressor:
    """What ``save`` uses of a Compressor: ``names()`` and ``compressed(name)``."""

    def __init__(self, results: dict[str, PQResult]) -> None:
        self.results = results

    def names(self) -> list[str]:
        return list(self.results)

    def compressed(self, name: str) -> PQResult:
        return self.results[name]


def split(data: bytes) -> tuple[dict, bytes]:
    """(manifest, payload area) of a .pqz file's bytes, without checks."""
    _, _, flags, mlen, _ = container.HEADER.unpack_from(data, 0)
    raw = data[container.HEADER_SIZE : container.HEADER_SIZE + mlen]
    if flags & 1:
        raw = zlib.decompress(raw)
    return json.loads(raw), data[container.HEADER_SIZE + mlen :]


def join(manifest: dict, payload: bytes, *, version: int | None = None) -> bytes:
    """A file with valid checksums for ``manifest`` (as a tamperer who recomputes them would):
    the header's version is the manifest's (unless given), and a version-3 payload digest is
    recomputed when the manifest has one."""
    if version is None:
        v = manifest.get("format_version")
        version = v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 else 1
    if version >= container.COMPACT_FORMAT_VERSION and "payload_sha256" in manifest:
        manifest = {**manifest, "payload_sha256": hashlib.sha256(payload).hexdigest()}
    stored = zlib.compress(json.dumps(manifest).encode())
    digest = hashlib.sha256(stored).digest()
    head = struct.pack("<8sIIQ32s", container.MAGIC, version, 1, len(stored), digest)
    return head + stored + payload
