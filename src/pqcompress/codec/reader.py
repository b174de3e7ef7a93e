"""Reading .pqz files: ``read`` (manifest + tensors), ``load`` (registry model), ``load_into``.

Nothing in the file is executed: the manifest is JSON, payloads are integers and raw
little-endian values. Every check that can be made before inflating is made first
(header, manifest checksum, sizes against shapes, the decoded-size limit), then each
payload's SHA-256 is verified before it is decompressed with a bounded decompressor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pqcompress.codec import container, entropy
from pqcompress.codec.entries import numel
from pqcompress.codec.errors import FormatError
from pqcompress.codec.npdecode import decode_entry
from pqcompress.codec.symbols import SymbolMap
from pqcompress.codec.tensorcode import decode_tensor
from pqcompress.errors import ConfigError
from pqcompress.unwrap import unwrap

DEFAULT_MAX_DECODED_BYTES = container.DEFAULT_MAX_DECODED_BYTES
INFLATE_THREADS = min(4, os.cpu_count() or 1)


def _read_bytes(path: str | Path) -> Any:
    return container.map_file(path)


def sections(
    path: str | Path, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> tuple[dict[str, Any], Iterator[tuple[dict[str, Any], SymbolMap | None, dict[str, bytes]]]]:
    """(manifest, iterator of (entry, symbol map, inflated sections by role)), all checked."""
    data = _read_bytes(path)
    where = str(path)
    manifest, payload = container.split_file(data, where)
    maps = container.validate(manifest, max_decoded_bytes)

    def inflate(entry: dict[str, Any]) -> dict[str, bytes]:
        raws: dict[str, bytes] = {}
        for s in entry["sections"]:
            stored = container.check_payload(where, f"tensor '{entry['name']}'", s, payload)
            try:
                raws[s["role"]] = entropy.decompress(s["codec"], stored, s["raw_length"])
            except FormatError as exc:
                raise type(exc)(f"'{where}': tensor '{entry['name']}': {exc}") from None
        return raws

    def items() -> Iterator[tuple[dict[str, Any], SymbolMap | None, dict[str, bytes]]]:
        # hashing and inflating release the GIL: run them on worker threads, in file order,
        # while the caller decodes the tensors already inflated
        with ThreadPoolExecutor(max_workers=INFLATE_THREADS) as pool:
            futures = [pool.submit(inflate, entry) for entry in manifest["tensors"]]
            try:
                for entry, smap, future in zip(manifest["tensors"], maps, futures, strict=True):
                    yield entry, smap, future.result()
            finally:
                for future in futures:
                    future.cancel()

    return manifest, items()


def read(
    path: str | Path,
    *,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    decoder: str = "auto",
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(manifest, {name: tensor}) of a .pqz file; FormatError (or a subclass) if refused.

    ``decoder``: "numba" (fused kernels on GIL-free threads), "numpy" (no numba import), or
    "auto" (numpy below NUMBA_MIN_ELEMENTS elements). Both give bit-identical tensors.
    """
    manifest, items = sections(path, max_decoded_bytes)
    return manifest, _decode_all(items, use_numba(manifest, decoder))


# Below this many elements in a file, tensors decode with numpy (``npdecode``, bit-identical):
# importing numba and loading its compiled kernels costs more than the kernels save.
NUMBA_MIN_ELEMENTS = 4 << 20
_NUMPY_DTYPES = (
    "float32",
    "float16",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
)


DECODERS = ("auto", "numba", "numpy")


def use_numba(manifest: dict[str, Any], decoder: str = "auto") -> bool:
    """Whether to decode with the numba kernels: ``decoder="auto"`` picks them for files of at
    least NUMBA_MIN_ELEMENTS elements and for dtypes numpy cannot represent (bfloat16)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is not accepted; expected one of {DECODERS}")
    if decoder != "auto":
        return decoder == "numba"
    entries = manifest["tensors"]
    if any(e["dtype"] not in _NUMPY_DTYPES for e in entries):
        return True
    return sum(numel(e["shape"]) for e in entries) >= NUMBA_MIN_ELEMENTS


def _decode_all(
    items: Iterator[tuple[dict[str, Any], SymbolMap | None, dict[str, bytes]]], numba: bool = True
) -> dict[str, torch.Tensor]:
    if numba:
        return {entry["name"]: decode_tensor(entry, smap, raws) for entry, smap, raws in items}
    out = {}
    for entry, smap, raws in items:
        values, _ = decode_entry(entry, smap, raws)
        if not (values.flags.writeable and values.flags.c_contiguous):
            values = np.array(values, order="C")  # a view of the read-only section bytes
        out[entry["name"]] = torch.from_numpy(values)
    return out


def load_into(
    model: nn.Module,
    path: str | Path,
    *,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    decoder: str = "auto",
) -> nn.Module:
    """Load the file's tensors into ``model`` (strict: names and shapes must match); a model
    in DDP, DataParallel or ``torch.compile`` is loaded through to the module it wraps."""
    manifest, tensors = read(path, max_decoded_bytes=max_decoded_bytes, decoder=decoder)
    _load_state(unwrap(model), tensors, path, assign=False, shrunk=_is_shrunk(manifest))
    return model


def load(
    path: str | Path,
    *,
    model: nn.Module | Callable[..., nn.Module] | str | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    decoder: str = "auto",
) -> nn.Module:
    """Rebuild the model the file names and load its tensors (in eval mode).

    A registry model is rebuilt from its name. A user's own model comes from ``model``: a
    module (loaded into, as :func:`load_into`), a factory (called with the file's
    ``model_args``, and ``num_classes``/``input_shape`` when it takes them) or its
    ``package.module:factory`` path. The file may record the factory's path, but opening it
    never imports code: without ``model`` such a file is refused, naming the path to pass.

    A registry model is built on the "meta" device (no random init) on a helper thread while
    the tensors decode (the decode kernels, hashing and inflation release the GIL), then the
    decoded tensors are assigned to it.
    """
    from pqcompress.models.factory import is_factory_path

    if isinstance(model, nn.Module):
        return load_into(model, path, max_decoded_bytes=max_decoded_bytes, decoder=decoder).eval()
    manifest, items = sections(path, max_decoded_bytes)
    spec = manifest.get("model") or {}
    name = spec.get("name")
    if model is None and isinstance(name, str) and is_factory_path(name):
        raise FormatError(
            f"'{path}' was saved from your own model {name!r}; opening a file never imports "
            f"code from it: pass it yourself, pqcompress.load(path, model={name!r}) (or the "
            f"factory, or a built module; CLI: --model {name})"
        )
    if model is None and (not isinstance(name, str) or name == "custom"):
        raise FormatError(
            f"'{path}' holds a custom model (no registry name); build the model yourself and "
            "call pqcompress.load(path, model=your_module) (or load_into(your_module, path))"
        )
    from pqcompress.models.registry import build_model

    kwargs: dict[str, Any] = dict(spec.get("model_args") or {})
    if spec.get("num_classes") is not None:
        kwargs["num_classes"] = int(spec["num_classes"])
    if spec.get("input_shape") is not None:
        kwargs["input_shape"] = tuple(int(d) for d in spec["input_shape"])
    if model is not None:  # the caller's factory (a callable or its path): built, then loaded
        built = _build_with(model, kwargs, path)
        tensors = _decode_all(items, use_numba(manifest, decoder))
        _load_state(built, tensors, path, assign=False, shrunk=_is_shrunk(manifest))
        return built.eval()
    assert isinstance(name, str)  # a registry name (the refusals above took the rest)

    def build_meta() -> nn.Module | None:
        try:  # the device context is thread-local: the decoding thread is not affected
            with torch.device("meta"):
                return build_model(name, **kwargs)
        except Exception:  # a builder that cannot run on meta: built normally below
            return None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pqz-build") as pool:
        future = pool.submit(build_meta)
        try:
            tensors = _decode_all(items, use_numba(manifest, decoder))
        finally:
            model = future.result()
    shrunk = _is_shrunk(manifest)
    if model is not None:
        try:
            _load_state(model, tensors, path, assign=True, shrunk=shrunk)
            if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
                raise RuntimeError("tensors left on the meta device")
        except FormatError:
            raise
        except Exception:
            model = None
    if model is None:
        try:
            model = build_model(name, **kwargs)
        except Exception as exc:  # a registry error, or model_args the builder refuses
            detail = " ".join(str(exc).split())
            raise FormatError(
                f"'{path}' names model {name!r} with settings it cannot be built from: {detail}"
            ) from None
        _load_state(model, tensors, path, assign=False, shrunk=shrunk)
    return model.eval()


def _build_with(
    factory: Callable[..., nn.Module] | str, kwargs: dict[str, Any], path: Any
) -> nn.Module:
    """The caller's model from its factory (or ``package.module:factory`` path) and the file's
    settings; FormatError when it cannot be built from them."""
    import inspect

    from pqcompress.models.factory import build_from_factory

    if isinstance(factory, str):
        shape = kwargs.pop("input_shape", ())
        classes = kwargs.pop("num_classes", 10)
        return build_from_factory(factory, num_classes=classes, input_shape=shape, **kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    chosen = {k: v for k, v in kwargs.items() if takes_all or k in params}
    built = factory(**chosen)
    if not isinstance(built, nn.Module):
        raise FormatError(f"model= returned {type(built).__name__}, not a torch.nn.Module")
    return built


def _is_shrunk(manifest: Any) -> bool:
    """Whether the file holds a model shrunk to its kept channels (``model.shrunk``)."""
    spec = manifest.get("model") if isinstance(manifest, dict) else None
    return isinstance(spec, dict) and isinstance(spec.get("shrunk"), dict)


def _load_state(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    path: Any,
    assign: bool,
    shrunk: bool = False,
) -> None:
    if shrunk:  # the layers the file stores with fewer channels get the stored sizes
        from pqcompress.models.resize import resize_to

        try:
            resize_to(model, {k: tuple(v.shape) for k, v in tensors.items()})
        except ConfigError as exc:
            raise FormatError(f"'{path}' holds a shrunk model that does not fit: {exc}") from None
    expected = model.state_dict()
    for name, t in tensors.items():
        want = expected.get(name)
        if want is not None and want.dtype != t.dtype:
            raise FormatError(
                f"'{path}': tensor '{name}' is stored as {t.dtype}, but the model holds "
                f"{want.dtype} there; the file does not fit this model"
            )
    try:
        model.load_state_dict(tensors, strict=True, assign=assign)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise FormatError(f"'{path}' does not fit this model: {detail}") from None
