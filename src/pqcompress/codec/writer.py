"""``save``: a model (plus its compressor's integer codes) into one .pqz file, atomically."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pqcompress.atomic import atomic_write
from pqcompress.codec import container, entropy, layouts
from pqcompress.codec.entries import entry_runs_on_int8
from pqcompress.codec.errors import FormatError
from pqcompress.codec.tensorcode import DTYPES, Section, _compress_all, encode_tensor
from pqcompress.errors import ConfigError
from pqcompress.inputspec import DEFAULT_INPUT as INPUT_NAME
from pqcompress.inputspec import (
    InputSpec,
    as_specs,
    from_input_shape,
    random_arrays,
    single_float_shape,
)
from pqcompress.unwrap import unwrap

FLOAT_DTYPES = ("float32", "float16")
ONNX_CHOICES = ("none", "auto", "float32", "all")


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
    inputs: Iterable[Any] | None = None,
    output: str | int | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    onnx: str = "none",
    calibration: Iterable[Any] | None = None,
    opset: int = 17,
    integrity: str = "auto",
    shrink: bool = False,
) -> Path:
    """Write ``model.state_dict()`` to ``path`` as a .pqz file and return the path.

    Tensors the ``compressor`` compresses are stored as their integer codes
    (``compressor.compressed(name)``), bit-packed; every other tensor as raw values
    (float32 by default, bit-exact; ``float_dtype="float16"`` halves them, lossily, and the
    manifest says so). ``layout`` (auto, dense, bitmap, csr, csc) and ``codec`` (auto, raw,
    deflate, lzma, zstd) apply to every tensor; ``auto`` keeps the smallest per tensor.
    ``model_name`` (a registry name) plus ``num_classes``/``input_shape``/``model_args`` let
    :func:`pqcompress.codec.load` rebuild the model; they default to what
    :func:`pqcompress.models.build_model` recorded on the model (``pqc_registry``).
    ``inputs`` (a list of :class:`~pqcompress.InputSpec`: name, dtype, shape with dynamic
    axes) describes a model that does not take one float tensor (token ids, an attention
    mask, several inputs); it is recorded in the manifest and names the embedded graphs'
    inputs (``input_shape`` is the one-float-input shorthand). ``output`` picks the output
    to keep of a model that returns a mapping or a tuple (see
    :func:`pqcompress.export.export_onnx`). Without a
    name the file is "custom" and is read with :func:`pqcompress.codec.load_into`. The file is written to a temporary file in
    the same directory, fsynced and renamed over ``path``: a crash never leaves a partial file.

    ``integrity``: ``"auto"`` (default) stores one SHA-256 of the whole payload (format
    version 3, docs/format.md §7) when the payload is at most 1 MiB, else one per section;
    ``"sections"`` always one per section (versions 1/2, which pqcompress before 0.2 reads);
    ``"payload"`` always one for the whole payload.

    ``shrink=True`` stores a smaller model: every channel whose parameters are all zero in
    its whole coupled group (what ``granularity="channel"`` pruned) is removed, with its
    BatchNorm entries and the next layers' input columns (Torch-Pruning does the surgery on
    a copy; ``model`` is untouched). The tensors, their codes and the embedded graphs are
    the shrunk model's; the manifest records ``model.shrunk`` (the groups, parameters and
    MACs before and after), and :func:`pqcompress.codec.load`/``load_into`` resize the
    layers of the model they build to the stored shapes before loading. The shrunk model's
    outputs are checked against the unshrunk one's on random inputs of the model's spec
    (float within 1e-4); a model the surgery cannot follow is a ShrinkError naming its layer.

    ``onnx`` embeds ONNX graphs (format version 2; docs/format.md §8) whose weights are the
    file's own tensors, attached again by ``pqcompress.codec.portable.onnx_model_bytes``:
    ``"none"`` (default here; ``export_run`` defaults to ``"auto"``), ``"float32"`` (the
    float32 graph), ``"all"`` (float32 plus the static int8 QDQ graph, calibrated on
    ``calibration``, a few input batches), ``"auto"`` (the float32 graph when the onnx package
    is importable and the input shape is known, plus the int8 graph when ``calibration`` is
    given and every compressed tensor is uniform/quantize codes of <= 8 bits; an export
    failure is a warning, not an error).
    """
    _check_options(layout, codec, float_dtype, onnx, calibration, integrity)
    specs = as_specs(inputs)
    if specs is not None and input_shape is not None:
        raise ConfigError("pass inputs= or input_shape= (one float input), not both")
    path = Path(path)
    model = unwrap(model)  # DDP / DataParallel / compiled: the plain model's names
    registry = getattr(model, "pqc_registry", None)  # set by models.build_model
    if model_name is None and isinstance(registry, Mapping) and registry.get("name"):
        model_name = str(registry["name"])
        model_args = registry.get("model_args") if model_args is None else model_args
        num_classes = registry.get("num_classes") if num_classes is None else num_classes
        input_shape = registry.get("input_shape") if input_shape is None else input_shape
    state = model.state_dict()
    results = _compressed(compressor, state)
    shrunk: dict[str, Any] | None = None
    if shrink:
        known = specs or as_specs(_recorded_inputs(registry))
        if known is None and input_shape is not None:
            known = (from_input_shape(input_shape),)
        model, results, shrunk = _shrink(model, results, known)
        state = model.state_dict()
        compressor = _Coded(results) if compressor is not None else None
    payload = _Payload()
    entries, decoded, native = _encode_state(state, results, layout, codec, float_dtype, payload)
    if specs is None and input_shape is None:
        specs = as_specs(_recorded_inputs(registry))  # what a builder recorded, if anything
    if specs is not None and input_shape is None:
        input_shape = _sample_shape(specs)
    model_record = _model_record(
        model_name, model_args, num_classes, input_shape, has_inputs=specs is not None
    )
    if specs is not None and not _is_shorthand(specs):
        model_record["inputs"] = [s.to_dict() for s in specs]
    if shrunk is not None:
        model_record["shrunk"] = shrunk
    if specs is None and model_record.get("input_shape") is not None:
        specs = (from_input_shape(model_record["input_shape"]),)
    graphs = _embed_graphs(
        _graphs(
            onnx, model, decoded, native, results, compressor,
            specs, calibration, opset, output,
        ),
        codec,
        payload,
    )  # fmt: skip
    version, payload_digest = _seal(entries, graphs, payload, integrity)
    manifest = {
        "format": "pqz",
        "format_version": version,
        "writer": _writer_name(),
        "model": model_record,
        "preprocessing": dict(preprocessing) if preprocessing is not None else None,
        "class_names": list(class_names) if class_names is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
        "float_dtype": float_dtype,
        "lossy": any(e["lossy"] for e in entries),
        "payload_bytes": payload.size,
        "tensors": entries,
    }
    if graphs:
        manifest["graphs"] = graphs
    if payload_digest is not None:
        manifest["payload_sha256"] = payload_digest
    body = container.store_manifest(container.manifest_bytes(manifest))
    head = container.header(body, version=version)

    def write(fh: Any) -> None:
        fh.write(head)
        fh.write(body)
        for chunk in payload.chunks:
            fh.write(chunk)

    atomic_write(path, write)
    return path


def _check_options(
    layout: str,
    codec: str,
    float_dtype: str,
    onnx: str,
    calibration: Iterable[Any] | None,
    integrity: str,
) -> None:
    """ConfigError for an option ``save`` does not accept, before anything is encoded."""
    if layout not in ("auto", *layouts.LAYOUTS):
        raise ConfigError(
            f"layout={layout!r} is not accepted; use auto, {', '.join(layouts.LAYOUTS)}"
        )
    if codec != "auto" and codec not in entropy.CODECS:
        raise ConfigError(f"codec={codec!r} is not accepted; use auto, {', '.join(entropy.CODECS)}")
    if codec == "zstd" and not entropy.zstd_available():
        raise ConfigError("codec='zstd' needs the 'zstandard' package (pip install zstandard)")
    if integrity not in container.INTEGRITY:
        raise ConfigError(
            f"integrity={integrity!r} is not accepted; use {', '.join(container.INTEGRITY)}"
        )
    if float_dtype not in FLOAT_DTYPES:
        raise ConfigError(f"float_dtype={float_dtype!r} is not accepted; use float32 or float16")
    if onnx not in ONNX_CHOICES:
        raise ConfigError(f"onnx={onnx!r} is not accepted; use {', '.join(ONNX_CHOICES)}")
    if onnx == "all" and calibration is None:
        raise ConfigError("onnx='all' embeds the int8 graph and needs calibration= (input batches)")


class _Payload:
    """The payload area being built: its chunks in order, and where the next one goes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> dict[str, Any]:
        """Append ``data``; its offset, length and (formats 1/2) SHA-256."""
        record = {
            "offset": self.size,
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.chunks.append(data)
        self.size += len(data)
        return record


def _encode_state(
    state: Mapping[str, torch.Tensor],
    results: dict[str, Any],
    layout: str,
    codec: str,
    float_dtype: str,
    payload: _Payload,
) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """(manifest entries, the tensors as a reader will decode them, the int8 codes of the
    tensors that run on int8 kernels), with every section appended to ``payload``."""
    entries: list[dict[str, Any]] = []
    decoded: dict[str, torch.Tensor] = {}
    native: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        enc = encode_tensor(
            name, tensor, results.get(name), layout=layout, codec=codec, float_dtype=float_dtype
        )
        e = enc.entry
        t = tensor.detach().cpu()  # what a reader decodes (a GPU model's tensors included)
        if e["encoding"] == "values" and e["storage_dtype"] != e["dtype"]:
            decoded[name] = t.to(DTYPES[e["storage_dtype"]]).to(tensor.dtype)
        else:
            decoded[name] = t
        if entry_runs_on_int8(e):
            native[name] = results[name].codes.detach().cpu().numpy().reshape(tensor.shape)
        e["sections"] = [
            {**s.meta(), **payload.add(s.data), "raw_length": len(s.raw)} for s in enc.sections
        ]
        entries.append(e)
    return entries, decoded, native


def _embed_graphs(
    graphs: list[tuple[dict[str, Any], bytes]], codec: str, payload: _Payload
) -> list[dict[str, Any]]:
    """Compress each graph, append it to ``payload``; the graph records for the manifest."""
    out = []
    for record, raw in graphs:
        section = Section("graph", raw, "onnx")
        _compress_all([section], entropy.auto_candidates() if codec == "auto" else [codec])
        record.update(codec=section.codec, raw_length=len(raw), **payload.add(section.data))
        out.append(record)
    return out


def _seal(
    entries: list[dict[str, Any]],
    graphs: list[dict[str, Any]],
    payload: _Payload,
    integrity: str,
) -> tuple[int, str | None]:
    """(format version, the whole-payload SHA-256 or None): format 3 keeps one digest of the
    payload area and drops the per-section ones; formats 1/2 keep those (docs/format.md §7)."""
    compact = integrity == "payload" or (
        integrity == "auto" and payload.size <= container.COMPACT_MAX_PAYLOAD
    )
    if not compact:
        version = container.GRAPHS_FORMAT_VERSION if graphs else container.FORMAT_VERSION
        return version, None
    for record in [*graphs, *(s for e in entries for s in e["sections"])]:
        record.pop("sha256")
    digest = hashlib.sha256()
    for chunk in payload.chunks:
        digest.update(chunk)
    return container.COMPACT_FORMAT_VERSION, digest.hexdigest()


def _graphs(
    which: str,
    model: nn.Module,
    decoded: dict[str, torch.Tensor],
    native: dict[str, np.ndarray],
    results: dict[str, Any],
    compressor: Any,
    specs: Sequence[InputSpec] | None,
    calibration: Iterable[Any] | None,
    opset: int,
    output: str | int | None,
) -> list[tuple[dict[str, Any], bytes]]:
    """The embedded graphs ``onnx=which`` asks for (see ``save``)."""
    if which == "none":
        return []
    if which == "auto":
        try:
            import onnx  # noqa: F401
        except ImportError:
            return []
        if specs is None:  # said, not silent: serving this file would need a graph
            warnings.warn(
                "onnx='auto' embeds no graph: the model's inputs are unknown; pass "
                "input_shape=(one sample's shape) for one float input, or "
                "inputs=[pqcompress.InputSpec(name, dtype, shape), ...], to embed one "
                "(serving without torch needs it)",
                stacklevel=3,
            )
            return []
        compressed = [n for n, r in results.items() if r.codes is not None or r.kind != "none"]
        int8 = calibration is not None and bool(compressed) and all(n in native for n in compressed)
    elif specs is None:
        raise ConfigError(
            f"onnx={which!r} needs the model's inputs: pass input_shape= (one sample's "
            "shape), inputs=[pqcompress.InputSpec(...)] or a registry model_name="
        )
    else:
        int8 = which == "all"
    from pqcompress.export.embed import graph_payloads

    for with_int8 in (True, False) if int8 else (False,):
        try:
            return graph_payloads(
                model,
                decoded,
                native,
                compressor,
                inputs=specs,
                int8=with_int8,
                calibration=calibration,
                opset=opset,
                output=output,
            )
        except Exception as exc:  # "auto" embeds what it can; an explicit request fails loudly
            if which != "auto":
                raise
            what = "no int8 ONNX graph" if with_int8 else "no ONNX graph"
            warnings.warn(f"{what} embedded: {exc}", stacklevel=3)
    return []


def _recorded_inputs(registry: Any) -> Any:
    """The input specs a builder recorded on the model (``pqc_registry["inputs"]``), if any."""
    return registry.get("inputs") if isinstance(registry, Mapping) else None


def _is_shorthand(specs: Sequence[InputSpec]) -> bool:
    """Whether ``specs`` says no more than ``input_shape`` does (one float32 input named
    ``input`` with a fixed sample shape and batch axis ``batch``)."""
    return (
        single_float_shape(specs) is not None
        and specs[0].name == INPUT_NAME
        and specs[0].shape[0] == "batch"
        and specs[0].low is None
        and specs[0].high is None
    )


def _sample_shape(specs: Sequence[InputSpec]) -> tuple[int, ...] | None:
    """The first input's sample shape when it is fixed (what a factory's ``input_shape`` is)."""
    dims = specs[0].sample_shape
    return tuple(int(d) for d in dims) if all(isinstance(d, int) for d in dims) else None


class _Coded:
    """The compressed tensors of a shrunk model, as a Compressor answers for them."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.results = dict(results)

    def names(self) -> list[str]:
        return list(self.results)

    def compressed(self, name: str) -> Any:
        return self.results[name]


def _shrink(
    model: nn.Module, results: Mapping[str, Any], specs: Sequence[InputSpec] | None
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(a shrunk copy of ``model``, its compressed tensors' codes, the manifest record)."""
    import copy

    from pqcompress.aware.channels import shrink
    from pqcompress.ops.pq import PQResult, codes_from_values

    if specs is None:
        raise ConfigError(
            "shrink=True runs the model to check the shrunk one against it and needs its "
            "inputs: pass input_shape= (one sample's shape) or inputs=[pqcompress.InputSpec(...)]"
        )
    rng = np.random.default_rng(0)
    arrays = random_arrays(specs, rng, batch=2)
    example = {k: torch.from_numpy(v) for k, v in arrays.items()}
    if len(specs) == 1:
        example = (example[specs[0].name],)  # type: ignore[assignment]
    twin = copy.deepcopy(model)
    before = sum(  # the unshrunk model's float32 dense bytes, as inspect counts them
        t.numel() * (4 if t.is_floating_point() else t.element_size())
        for t in model.state_dict().values()
    )
    report = shrink(twin, example)
    state = twin.state_dict()
    out: dict[str, Any] = {}
    for name, r in results.items():
        values = state[name].detach()
        codes = None
        if r.codes is not None:
            codes = codes_from_values(values, r.kind, r.bits, r.scale, r.threshold)
        out[name] = PQResult(values.float().clone(), codes, r.kind, r.bits, r.scale, r.threshold)
    return twin, out, {**report.to_dict(), "float32_bytes_before": int(before)}


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
    *,
    has_inputs: bool = False,
) -> dict[str, Any]:
    if name is None or name == "custom":
        record: dict[str, Any] = {"name": "custom", "model_args": dict(args or {})}
        if num_classes is not None:
            record["num_classes"] = int(num_classes)
        if input_shape is not None:
            record["input_shape"] = [int(d) for d in input_shape]
        return record
    from pqcompress.models.factory import is_factory_path
    from pqcompress.models.registry import default_input_shape

    if is_factory_path(name):  # a user's factory: recorded as data, never imported here
        if input_shape is None and not has_inputs:
            raise ConfigError(f"model_name={name!r} (a factory) needs input_shape= or inputs=")
        default: Sequence[int] | None = input_shape
    else:
        default = default_input_shape(name)  # RegistryError for unknown names
    return {
        "name": name,
        "num_classes": int(num_classes) if num_classes is not None else None,
        "input_shape": (
            [int(d) for d in (input_shape if input_shape is not None else default)]
            if input_shape is not None or default is not None
            else None
        ),
        "model_args": dict(args or {}),
    }
