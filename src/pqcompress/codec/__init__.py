"""The .pqz compressed model format: integer codes bit-packed, sparse layouts, entropy coding,
checksums; a JSON manifest and no pickle (docs/format.md).

``save(model, path, compressor)`` writes a file, ``load(path)`` rebuilds a registry model,
``load_into(model, path)`` fills any module, ``read(path)`` returns (manifest, tensors),
``inspect(path)`` summarises sizes, ``export_run(run_dir, out)`` exports a training run
(``export_best`` only when its best epoch is newer than the file).
``pqcompress.codec.portable`` reads files with numpy only (no torch), for serving.

Names are imported lazily, so ``import pqcompress.codec.portable`` never imports torch.
"""

from __future__ import annotations

from pqcompress.lazy import lazy_exports

_EXPORTS = {
    "ChecksumError": "pqcompress.codec.errors",
    "DecompressionBombError": "pqcompress.codec.errors",
    "FormatError": "pqcompress.codec.errors",
    "GraphError": "pqcompress.codec.errors",
    "VersionError": "pqcompress.codec.errors",
    "export_best": "pqcompress.codec.run_export",
    "export_run": "pqcompress.codec.run_export",
    "inspect": "pqcompress.codec.summary",
    "load": "pqcompress.codec.reader",
    "load_into": "pqcompress.codec.reader",
    "read": "pqcompress.codec.reader",
    "save": "pqcompress.codec.writer",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
