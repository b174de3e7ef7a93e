"""``save``: a model (plus its compressor's integer codes) into one .pqz file, atomically."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from pqcompress.codec import container, entropy, layouts
from pqcompress.codec.errors import FormatError
from pqcompress.codec.tensorcode import encode_tensor
from pqcompress.errors import ConfigError
from pqcompress.train.atomic import atomic_write

FLOAT_DTYPES = ("float32", "float16")


def _writer_name() -> str:
    try:
        from pqcompress import __version__
    except ImportError:  # pragma: no cover
        return "pqcompress"
    return f"pqcompress {__version__}"


def save(
    model: nn.Module,
    path: str | Path,
    compressor: Any = None,
    *,
    layout: str = "auto",
    codec: str = "auto",
    float_dtype: str = "float32",
    model_name: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.state_dict()`` to ``path`` as a .pqz file and return the path.

    Tensors the ``compressor`` compresses are stored as their integer codes
    (``compressor.compressed(name)``), bit-packed; every other tensor as raw values
    (float32 by default, bit-exact; ``float_dtype="float16"`` halves them, lossily, and the
    manifest says so). ``layout`` (auto, dense, bitmap, csr, csc) and ``codec`` (auto, raw,
    deflate, lzma, zstd) apply to every tensor; ``auto`` keeps the smallest per tensor.
    ``model_name`` (a registry name) plus ``num_classes``/``input_shape``/``model_args`` let
    :func:`pqcompress.codec.load` rebuild the model; without it the file is "custom" and is
    read with :func:`pqcompress.codec.load_into`. The file is written to a temporary file in
    the same directory, fsynced and renamed over ``path``: a crash never leaves a partial file.
    """
    if layout not in ("auto", *layouts.LAYOUTS):
        raise ConfigError(
            f"layout={layout!r} is not accepted; use auto, {', '.join(layouts.LAYOUTS)}"
        )
    if codec != "auto" and codec not in entropy.CODECS:
        raise ConfigError(f"codec={codec!r} is not accepted; use auto, {', '.join(entropy.CODECS)}")
    if codec == "zstd" and not entropy.zstd_available():
        raise ConfigError("codec='zstd' needs the 'zstandard' package (pip install zstandard)")
    if float_dtype not in FLOAT_DTYPES:
        raise ConfigError(f"float_dtype={float_dtype!r} is not accepted; use float32 or float16")
    path = Path(path)
    state = model.state_dict()
    results = _compressed(compressor, state)
    entries, chunks, offset = [], [], 0
    for name, tensor in state.items():
        enc = encode_tensor(
            name, tensor, results.get(name), layout=layout, codec=codec, float_dtype=float_dtype
        )
        metas = []
        for s in enc.sections:
            meta = s.meta()
            meta.update(
                offset=offset,
                length=len(s.data),
                raw_length=len(s.raw),
                sha256=hashlib.sha256(s.data).hexdigest(),
            )
            metas.append(meta)
            chunks.append(s.data)
            offset += len(s.data)
        enc.entry["sections"] = metas
        entries.append(enc.entry)
    manifest = {
        "format": "pqz",
        "format_version": container.FORMAT_VERSION,
        "writer": _writer_name(),
        "model": _model_record(model_name, model_args, num_classes, input_shape),
        "preprocessing": dict(preprocessing) if preprocessing is not None else None,
        "class_names": list(class_names) if class_names is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
        "float_dtype": float_dtype,
        "lossy": any(e["lossy"] for e in entries),
        "payload_bytes": offset,
        "tensors": entries,
    }
    body = container.store_manifest(container.manifest_bytes(manifest))
    head = container.header(body)

    def write(fh: Any) -> None:
        fh.write(head)
        fh.write(body)
        for chunk in chunks:
            fh.write(chunk)

    atomic_write(path, write)
    return path


def _compressed(compressor: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    if compressor is None:
        return {}
    out = {}
    for name in compressor.names():
        if name not in state:
            raise FormatError(
                f"compressed tensor '{name}' is not in the model's state_dict; was the "
                "compressor built for this model?"
            )
        try:
            out[name] = compressor.compressed(name)
        except ValueError as exc:
            raise FormatError(f"cannot store tensor '{name}' as codes: {exc}") from None
    return out


def _model_record(
    name: str | None,
    args: Mapping[str, Any] | None,
    num_classes: int | None,
    input_shape: Sequence[int] | None,
) -> dict[str, Any]:
    if name is None or name == "custom":
        return {"name": "custom", "model_args": dict(args or {})}
    from pqcompress.models.registry import default_input_shape

    default = default_input_shape(name)  # RegistryError for unknown names
    return {
        "name": name,
        "num_classes": int(num_classes) if num_classes is not None else None,
        "input_shape": [int(d) for d in (input_shape if input_shape is not None else default)],
        "model_args": dict(args or {}),
    }
