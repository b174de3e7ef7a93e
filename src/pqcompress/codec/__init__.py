"""The .pqz compressed model format: integer codes bit-packed, sparse layouts, entropy coding,
checksums; a JSON manifest and no pickle (docs/format.md).

``save(model, path, compressor)`` writes a file, ``load(path)`` rebuilds a registry model,
``load_into(model, path)`` fills any module, ``read(path)`` returns (manifest, tensors),
``inspect(path)`` summarises sizes, ``export_run(run_dir, out)`` exports a training run.
"""

from __future__ import annotations

from pqcompress.codec.errors import (
    ChecksumError,
    DecompressionBombError,
    FormatError,
    VersionError,
)
from pqcompress.codec.export import export_run
from pqcompress.codec.reader import load, load_into, read
from pqcompress.codec.summary import inspect
from pqcompress.codec.writer import save

__all__ = [
    "ChecksumError",
    "DecompressionBombError",
    "FormatError",
    "VersionError",
    "export_run",
    "inspect",
    "load",
    "load_into",
    "read",
    "save",
]
