"""ONNX export: a float32 graph with the decoded weights, or an int8 QDQ graph for ONNX Runtime.

``export_onnx(model, path, input_shape=...)`` writes a float32 graph (dynamic batch axis).
``export_onnx(..., int8=True, calibration=batches)`` writes a static int8 QDQ graph:
activations are calibrated by ONNX Runtime's ``quantize_static`` (MinMax, uint8), weights are
per-tensor symmetric int8. With ``compressed=`` (a Compressor, a .pqz manifest or a .pqz path)
weights trained with the ``uniform``/``quantize`` forms at <= 8 bits become their trained
integer codes with the stored scale (``w = scale * k``, no second quantization); weights of the
other forms (exact, literal, prune, > 8 bits) are not on a zero-containing linear int8 grid,
so their layers are left in float (decoded, exact) instead of being quantized again.
``load_onnx(path)`` opens an ``onnxruntime.InferenceSession`` wrapped as an ``nn.Module``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pqcompress.atomic import atomic_write
from pqcompress.codec.entries import runs_on_int8
from pqcompress.errors import ConfigError, ModelError, PQCError
from pqcompress.inputspec import (
    InputSpec,
    as_specs,
    example_arrays,
    from_input_shape,
    numpy_dtype,
)
from pqcompress.unwrap import unwrap

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class ExportError(PQCError):
    """The model could not be exported to ONNX (missing packages, unsupported graph)."""


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(
            f"ONNX export needs the '{module}' package: pip install onnx onnxruntime "
            "(or pip install 'pqcompress[onnx]')"
        ) from None


@dataclass(frozen=True)
class CodedTensor:
    """Integer codes of one compressed tensor and the parameters that decode them."""

    name: str
    codes: torch.Tensor
    kind: str
    bits: int
    scale: float
    threshold: float

    @property
    def native_int8(self) -> bool:
        """True when ``value = scale * code`` with |code| <= 127: runs as-is on int8 kernels."""
        return runs_on_int8(self.kind, self.bits)


def native_int8(kind: str, bits: int) -> bool:
    """Whether a tensor of this form/bit width runs natively on int8 kernels."""
    return runs_on_int8(kind, bits)


def coded_tensors(model: nn.Module, compressed: Any) -> tuple[dict[str, CodedTensor], set[str]]:
    """({name: CodedTensor} for tensors stored as codes, {names of other compressed tensors}).

    ``compressed``: a Compressor (``names()``/``compressed(name)``), a .pqz manifest dict
    (codes recovered from the model's values with ``pq.codes_from_values``) or a .pqz path.
    """
    from pqcompress.ops.pq import codes_from_values

    if compressed is None:
        return {}, set()
    coded: dict[str, CodedTensor] = {}
    floats: set[str] = set()
    if isinstance(compressed, (str, os.PathLike)):  # only its manifest is needed
        from pqcompress.codec.portable import read_manifest

        compressed = read_manifest(compressed)
    if hasattr(compressed, "compressed") and hasattr(compressed, "names"):
        for name in compressed.names():
            r = compressed.compressed(name)
            if r.codes is not None:
                coded[name] = CodedTensor(
                    name, r.codes, r.kind, int(r.bits), float(r.scale), float(r.threshold)
                )
            elif r.kind != "none":
                floats.add(name)
        return coded, floats
    if isinstance(compressed, Mapping) and "tensors" in compressed:
        state = model.state_dict()
        for entry in compressed["tensors"]:
            name = entry["name"]
            if entry.get("encoding") == "codes":
                if name not in state:
                    raise ConfigError(f"manifest tensor '{name}' is not in the model")
                kind, bits = entry["kind"], int(entry["bits"])
                scale, thr = float(entry["scale"]), float(entry["threshold"])
                try:
                    codes = codes_from_values(state[name], kind, bits, scale, thr)
                except ValueError as exc:
                    raise ConfigError(
                        f"the model's '{name}' does not match the manifest's codes: {exc}"
                    ) from None
                coded[name] = CodedTensor(name, codes, kind, bits, scale, thr)
            elif entry.get("kind", "none") != "none":
                floats.add(name)
        return coded, floats
    raise ConfigError(
        "compressed= must be a Compressor, a .pqz manifest (dict with 'tensors') or a .pqz path; "
        f"got {type(compressed).__name__}"
    )


def resolve_inputs(
    input_shape: Sequence[int] | None, inputs: Iterable[Any] | None
) -> tuple[InputSpec, ...]:
    """The model's inputs from ``inputs=`` (InputSpecs) or the one-float-input shorthand
    ``input_shape=`` (named ``input``); ConfigError when neither or both are given."""
    if inputs is not None and input_shape is not None:
        raise ConfigError("pass inputs= or input_shape= (one float input), not both")
    if inputs is not None:
        specs = as_specs(inputs)
        assert specs is not None
        return specs
    if input_shape is None:
        raise ConfigError(
            "the model's inputs are unknown: pass input_shape=(one sample's shape) for one "
            "float input, or inputs=[pqcompress.InputSpec(name, dtype, shape), ...]"
        )
    return (from_input_shape(input_shape, INPUT_NAME),)


def example_inputs(
    specs: Sequence[InputSpec], sizes: Mapping[str, int] | None = None, *, batch: int = 1
) -> tuple[torch.Tensor, ...]:
    """Tensors of the inputs' shapes and dtypes (see ``inputspec.example_arrays``), in order."""
    arrays = example_arrays(specs, sizes, batch=batch)
    out = []
    for s in specs:
        t = torch.from_numpy(arrays[s.name])
        out.append(t.to(torch.bfloat16) if s.dtype == "bfloat16" else t)
    return tuple(out)


def _tensors_of(out: Any, output: str | int | None) -> tuple[list[str], Any]:
    """(output names, selector) for a model output: a tensor, a mapping (dict, ModelOutput)
    or a tuple/list; ``output`` keeps one entry (a key or an index)."""
    if torch.is_tensor(out):
        if output not in (None, 0) and not isinstance(output, str):
            raise ConfigError(f"output={output!r}: the model returns one tensor")
        return [output if isinstance(output, str) else OUTPUT_NAME], None
    if isinstance(out, Mapping):
        keys = [k for k, v in out.items() if torch.is_tensor(v)]
        if output is None:
            if not keys:
                raise ExportError("the model returns a mapping without tensors; nothing to export")
            return [str(k) for k in keys], tuple(keys)
        if output not in keys:
            raise ConfigError(f"output={output!r} is not among the model's tensor outputs {keys}")
        return [str(output)], (output,)
    if isinstance(out, (tuple, list)):
        idx = [i for i, v in enumerate(out) if torch.is_tensor(v)]
        if output is None:
            if not idx:
                raise ExportError("the model returns a sequence without tensors; nothing to export")
            if len(idx) == 1:
                return [OUTPUT_NAME], (idx[0],)
            return [f"output_{i}" for i in idx], tuple(idx)
        if not isinstance(output, int) or output not in idx:
            raise ConfigError(
                f"output={output!r}: the model returns a sequence; name one of the tensor "
                f"positions {idx}"
            )
        return [OUTPUT_NAME], (output,)
    raise ExportError(
        f"the model returns {type(out).__name__}; export needs a tensor, a mapping of tensors "
        "or a tuple of tensors"
    )


class _Select(nn.Module):
    """The model with its outputs narrowed to ``keys`` (mapping keys or tuple positions)."""

    def __init__(self, model: nn.Module, keys: tuple[Any, ...]) -> None:
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, *args: Any) -> Any:
        out = self.model(*args)
        picked = tuple(out[k] for k in self.keys)
        return picked[0] if len(picked) == 1 else picked


def _run(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Any:
    with torch.no_grad():
        return model(*args)


def _shapes(out: Any) -> list[tuple[int, ...]]:
    if torch.is_tensor(out):
        return [tuple(out.shape)]
    return [tuple(t.shape) for t in out]


def _dynamic_axes(
    model: nn.Module, specs: Sequence[InputSpec], outputs: list[str]
) -> tuple[tuple[torch.Tensor, ...], dict[str, dict[int, str]]]:
    """(the example inputs to trace with, dynamic axes of inputs and outputs): an output axis
    is dynamic when it changes with one of the inputs' named axes (found by running the
    model once more per axis name with that axis one longer)."""
    names = list(dict.fromkeys(d for s in specs for d in s.shape if isinstance(d, str)))
    batch = specs[0].shape[0]
    base = {n: (2 if n == batch else 8) for n in names}
    args = example_inputs(specs, base, batch=base[batch])  # batch 2: no batch-1 shortcuts
    ref = _shapes(_run(model, args))
    axes: dict[str, dict[int, str]] = {
        s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in specs
    }
    for name in outputs:
        axes[name] = {}
    for n in names:
        sizes = {**base, n: base[n] + 1}
        other = _shapes(_run(model, example_inputs(specs, sizes, batch=sizes[batch])))
        for name, a, b in zip(outputs, ref, other):
            for i, (da, db) in enumerate(zip(a, b)):
                if da != db:
                    axes[name].setdefault(i, n)
    return args, axes


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself when its tensors are on the CPU, else a CPU copy: graphs are traced
    and calibrated on the CPU, and a model trained on a GPU is exported as it is, without
    being moved off its device."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return model
    return copy.deepcopy(model).cpu()


def _export_float(
    model: nn.Module,
    specs: Sequence[InputSpec],
    opset: int,
    fold_batchnorm: bool,
    output: str | int | None = None,
) -> tuple[bytes, list[str]]:
    """(the float graph, its output names). Inputs are passed positionally in ``specs``
    order and keep their names."""
    model = on_cpu(model).eval()
    probe = example_inputs(specs, batch=2)
    try:
        out = _run(model, probe)
    except Exception as exc:
        raise ExportError(
            f"the model fails on inputs {[s.to_dict() for s in specs]}: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from None
    outputs, keys = _tensors_of(out, output)
    traced: nn.Module = model if keys is None else _Select(model, keys)
    args, axes = _dynamic_axes(traced, specs, outputs)
    buf = io.BytesIO()
    mode = torch.onnx.TrainingMode.EVAL if fold_batchnorm else torch.onnx.TrainingMode.PRESERVE
    with warnings.catch_warnings():
        # the TorchScript-based exporter warns that it is deprecated (torch >= 2.9): it is the
        # one that needs no onnxscript and keeps state-dict names for initializers
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                traced,
                args,
                buf,
                dynamo=False,
                opset_version=int(opset),
                training=mode,
                do_constant_folding=True,
                input_names=[s.name for s in specs],
                output_names=outputs,
                dynamic_axes=axes,
            )
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    blob = buf.getvalue()
    if keys is not None:
        blob = _strip_prefix(blob, "model.")
    _check_dynamic(blob, traced, specs)
    return blob, outputs


def _check_dynamic(blob: bytes, model: nn.Module, specs: Sequence[InputSpec]) -> None:
    """Run the graph (ONNX Runtime, when installed) with each named axis but the batch one
    size longer than traced and compare with the model: torch's tracer can bake a traced
    size into the graph (``nn.MultiheadAttention`` does so for the sequence axis), and such
    a graph must not be written as if it took any length."""
    batch = specs[0].shape[0]
    names = list(dict.fromkeys(d for s in specs for d in s.shape[1:] if isinstance(d, str)))
    if not names:
        return
    try:
        import onnxruntime as ort
    except ImportError:  # nothing to check with: the export stands as traced
        return
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    graph_inputs = {i.name for i in session.get_inputs()}
    for n in names:
        sizes = {d: 8 for d in names} | {n: 11}
        args = example_inputs(specs, sizes, batch=3)
        want = _run(model, args)
        want_list = [want] if torch.is_tensor(want) else list(want)
        feed = {
            s.name: (a.float() if a.dtype == torch.bfloat16 else a).numpy()
            for s, a in zip(specs, args)
            if s.name in graph_inputs
        }
        try:
            got = session.run(None, feed)
            ok = all(
                g.shape == tuple(w.shape)
                and np.allclose(g, w.detach().float().numpy(), rtol=1e-3, atol=1e-4)
                for g, w in zip(got, want_list)
            )
        except Exception:
            ok = False
        if not ok:
            raise ExportError(
                f"the exported graph does not run like the model when axis '{n}' has another "
                "size: torch's ONNX tracer fixed its traced size inside the graph (as it does "
                f"for nn.MultiheadAttention's sequence axis); give '{n}' a fixed size in the "
                f"input spec, e.g. shape ('{batch}', 128), and pad shorter inputs"
            )


def _strip_prefix(blob: bytes, prefix: str) -> bytes:
    """The graph with ``prefix`` taken off initializer names (the output selector's
    attribute), so they keep the model's own state-dict names."""
    onnx = _require("onnx")
    proto = onnx.load_from_string(blob)
    taken = {i.name for i in proto.graph.initializer}
    rename = {
        n: n[len(prefix) :] for n in taken if n.startswith(prefix) and n[len(prefix) :] not in taken
    }
    if not rename:
        return blob
    for init in proto.graph.initializer:
        init.name = rename.get(init.name, init.name)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return proto.SerializeToString()


def _match_initializers(graph: Any, model: nn.Module, names: Iterable[str]) -> dict[str, tuple]:
    """{param name: (initializer name, transposed)} for params whose values appear unchanged."""
    from onnx import numpy_helper

    state = model.state_dict()
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out: dict[str, tuple] = {}
    for name in names:
        v = state[name].detach().cpu().float().numpy()
        if name in inits and inits[name].shape == v.shape and np.array_equal(inits[name], v):
            out[name] = (name, False)
            continue
        for iname, arr in inits.items():
            if arr.dtype != np.float32:
                continue
            if arr.shape == v.shape and np.array_equal(arr, v):
                out[name] = (iname, False)
                break
            if v.ndim == 2 and arr.shape == v.T.shape and np.array_equal(arr, v.T):
                out[name] = (iname, True)
                break
    return out


def feed(specs: Sequence[InputSpec], batch: Any) -> dict[str, np.ndarray]:
    """One batch as ONNX Runtime inputs: a mapping by input name, a tuple/list in the specs'
    order (extra entries, e.g. labels of ``(x, y)`` pairs, are ignored) or, for one input, a
    tensor; each converted to its input's dtype."""
    if isinstance(batch, Mapping):
        missing = [s.name for s in specs if s.name not in batch]
        if missing:
            raise ConfigError(f"a calibration batch lacks inputs {missing}")
        values = [batch[s.name] for s in specs]
    elif isinstance(batch, (tuple, list)):
        if len(batch) < len(specs):
            raise ConfigError(
                f"a calibration batch holds {len(batch)} items; the model takes {len(specs)} inputs"
            )
        values = list(batch[: len(specs)])
    else:
        if len(specs) != 1:
            raise ConfigError(
                f"a calibration batch must give all {len(specs)} inputs (a dict or a tuple)"
            )
        values = [batch]
    out = {}
    for s, v in zip(specs, values):
        arr = v.detach().cpu() if torch.is_tensor(v) else v
        if torch.is_tensor(arr) and arr.dtype == torch.bfloat16:
            arr = arr.float()
        out[s.name] = np.asarray(arr).astype(numpy_dtype(s.dtype), copy=False)
    return out


class _Reader:
    """onnxruntime CalibrationDataReader over an iterable of input batches."""

    def __init__(self, batches: Iterable[Any], specs: Sequence[InputSpec]) -> None:
        self._it = iter(batches)
        self._specs = specs

    def get_next(self) -> dict[str, np.ndarray] | None:
        try:
            b = next(self._it)
        except StopIteration:
            return None
        return feed(self._specs, b)

    def rewind(self) -> None:  # pragma: no cover - part of the reader protocol
        pass


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int] | None = None,
    inputs: Iterable[InputSpec | Mapping[str, Any]] | None = None,
    output: str | int | None = None,
    int8: bool = False,
    calibration: Iterable[Any] | None = None,
    opset: int = 17,
    compressed: Any = None,
    reduce_range: bool = False,
) -> Path:
    """Write ``model`` as ONNX to ``path`` and return the path.

    ``input_shape`` is one sample's shape (no batch dimension) of the one float input
    ``input``; ``inputs`` names several, each an :class:`~pqcompress.InputSpec` (a dtype, and
    a shape whose string dimensions are dynamic), passed to ``forward`` positionally in that
    order, and the graph keeps their names and dynamic axes. A tensor output is ``logits``;
    a mapping (dict, ``ModelOutput``) gives one graph output per tensor, named by its key,
    and a tuple ``output_0``, ``output_1``...; ``output`` keeps only that key or position.
    ``int8=True`` needs ``calibration`` (an iterable of input batches: tensors, (x, y) pairs,
    tuples in input order or dicts by input name; a few batches suffice) and writes a QDQ
    graph (uint8 activations, per-tensor symmetric int8 weights) for ONNX Runtime.
    ``compressed`` (Compressor, .pqz manifest or path) makes uniform/quantize weights at
    <= 8 bits use their trained codes and stored scales exactly, and keeps layers whose
    weights have another compressed form in float.

    ``reduce_range=True`` passes ORT's 7-bit weight range (weights in -63..63): on x86 CPUs
    without VNNI, ORT's u8 x s8 kernels add pairs of products in int16 and can saturate
    (large errors for weights with many codes near +-127); 7-bit weights cannot, and then
    only codes of <= 7 bits are kept as they are (8-bit codes are quantized again, by ORT).
    """
    onnx = _require("onnx")
    path = Path(path)
    specs = resolve_inputs(input_shape, inputs)
    model = on_cpu(unwrap(model))  # the plain model of a compiled or DDP wrapper, on the CPU
    coded, float_named = coded_tensors(model, compressed)
    model = model.eval()
    # folding BatchNorm would move coded weights off their grid (and hide decoded ones)
    keep_bn = bool(int8 and (coded or float_named))
    blob, _ = _export_float(model, specs, opset, fold_batchnorm=not keep_bn, output=output)
    if not int8:
        atomic_write(path, lambda fh: fh.write(blob))
        return path
    if calibration is None:
        raise ConfigError("int8=True needs calibration= (an iterable of a few input batches)")
    _require("onnxruntime")
    fmodel = onnx.load_from_string(blob)
    top_bits = 7 if reduce_range else 8
    native = {n: c for n, c in coded.items() if c.native_int8 and c.bits <= top_bits}
    other = set(float_named) | {n for n, c in coded.items() if not c.native_int8}
    matched = _match_initializers(fmodel.graph, model, [*native, *other])
    # a recurrent layer's weights are exported re-laid out inside its LSTM/GRU/RNN node (gates
    # reordered, stacked): ORT's static QDQ leaves that node in float, where the decoded
    # values are exact, so there are no codes to keep
    modules = dict(model.named_modules())
    recurrent = {
        n
        for n in native
        if n not in matched and isinstance(modules.get(n.rpartition(".")[0]), nn.RNNBase)
    }
    native = {n: c for n, c in native.items() if n not in recurrent}
    missing = sorted(n for n in native if n not in matched)
    if missing:
        raise ExportError(
            f"cannot find the exported initializers of {missing[:3]} (folded into other "
            "constants?); their codes cannot be kept"
        )
    other_inits = {matched[n][0] for n in other if n in matched}
    exclude = [
        node.name
        for node in fmodel.graph.node
        if node.op_type in _WEIGHT_INPUT and other_inits & set(node.input)
    ]
    qmodel = _quantize_static_qdq(blob, calibration, reduce_range, exclude, specs)
    _substitute_codes(qmodel, fmodel, native, matched)
    onnx.save(qmodel, str(path))
    return path


def _quantize_static_qdq(
    blob: bytes,
    calibration: Iterable[Any],
    reduce_range: bool,
    exclude: list[str],
    specs: Sequence[InputSpec],
) -> Any:
    """ONNX Runtime's static QDQ quantization of a float graph (uint8 activations by MinMax
    calibration, per-tensor symmetric int8 weights, BatchNormalization left in float),
    leaving the ``exclude`` nodes in float."""
    onnx = _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry

    with tempfile.TemporaryDirectory(prefix="pqc-onnx-") as tmp:
        fpath = Path(tmp) / "float.onnx"
        fpath.write_bytes(blob)
        qpath = Path(tmp) / "int8.onnx"
        op_types = [op for op in QDQRegistry if op != "BatchNormalization"]
        with _quiet():
            quantize_static(
                str(fpath),
                str(qpath),
                _Reader(calibration, specs),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
                reduce_range=bool(reduce_range),
                op_types_to_quantize=op_types,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=exclude,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        return onnx.load(str(qpath))


def export_onnx_dynamic_int8(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int] | None = None,
    inputs: Iterable[InputSpec | Mapping[str, Any]] | None = None,
    output: str | int | None = None,
    opset: int = 17,
) -> Path:
    """Write ``model`` as a dynamic-range int8 ONNX graph for ONNX Runtime and return the path.

    Weights of Conv and MatMul/Gemm are stored as int8 (per-tensor, ORT's
    ``quantize_dynamic``); activations stay float and are quantized per batch at run time
    (ConvInteger / MatMulInteger). No calibration data is needed. Inputs and outputs as
    :func:`export_onnx`.
    """
    _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    specs = resolve_inputs(input_shape, inputs)
    blob, _ = _export_float(unwrap(model).eval(), specs, opset, fold_batchnorm=True, output=output)
    with tempfile.TemporaryDirectory(prefix="pqc-dyn-") as tmp:
        fpath = Path(tmp) / "float.onnx"
        fpath.write_bytes(blob)
        with _quiet():
            quantize_dynamic(str(fpath), str(path), weight_type=QuantType.QInt8)
    return path


@contextlib.contextmanager
def _quiet():
    """Silence ORT's quantizer: root-logger advice to pre-process, warnings, prints."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


# where an op takes its weight: Conv/Gemm/MatMul the second input, Gather (an embedding
# lookup) the first (its table)
_WEIGHT_INPUT = {"Conv": 1, "Gemm": 1, "MatMul": 1, "Gather": 0}


def _substitute_codes(
    qmodel: Any, fmodel: Any, native: Mapping[str, CodedTensor], matched: Mapping[str, tuple]
) -> None:
    """Replace ORT's int8 weights by the trained codes, their scales by the stored scales, and
    re-quantize the int32 biases that depend on those scales."""
    from onnx import numpy_helper

    g = qmodel.graph
    inits = {i.name: i for i in g.initializer}
    dq_by_out = {n.output[0]: n for n in g.node if n.op_type == "DequantizeLinear"}
    float_inits = {i.name: numpy_helper.to_array(i) for i in fmodel.graph.initializer}
    by_init = {matched[n][0]: (native[n], matched[n][1]) for n in native if n in matched}

    def set_init(name: str, arr: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))

    for node in g.node:
        at = _WEIGHT_INPUT.get(node.op_type)
        if at is None or len(node.input) <= at:
            continue
        wdq = dq_by_out.get(node.input[at])
        if wdq is None or wdq.input[0] not in inits:
            continue
        qname = wdq.input[0]
        base = qname[: -len("_quantized")] if qname.endswith("_quantized") else qname
        if base not in by_init:
            continue
        ct, transposed = by_init[base]
        codes = ct.codes.detach().cpu().numpy().astype(np.int8)
        if transposed:
            codes = np.ascontiguousarray(codes.T)
        old = numpy_helper.to_array(inits[qname])
        if old.shape != codes.shape:
            raise ExportError(f"shape mismatch substituting codes for '{ct.name}'")
        # a Gather table is quantized like an activation (uint8, zero point): the same codes,
        # shifted by 128 with zero point 128, dequantize to the same values
        offset = 128 if old.dtype == np.uint8 else 0
        set_init(qname, (codes.astype(np.int16) + offset).astype(old.dtype))
        scale = np.array(ct.scale, dtype=np.float32).reshape(
            numpy_helper.to_array(inits[wdq.input[1]]).shape
        )
        set_init(wdq.input[1], scale)
        if len(wdq.input) > 2 and wdq.input[2] in inits:
            zp = numpy_helper.to_array(inits[wdq.input[2]])
            set_init(wdq.input[2], np.full(zp.shape, offset, dtype=zp.dtype))
        # bias: int32 with scale = input scale * weight scale
        if len(node.input) > 2 and node.input[2] in dq_by_out:
            bdq = dq_by_out[node.input[2]]
            xdq = dq_by_out.get(node.input[0])
            bname = bdq.input[0]
            bbase = bname[: -len("_quantized")] if bname.endswith("_quantized") else bname
            if xdq is None or bbase not in float_inits or bdq.input[1] not in inits:
                continue
            xs = float(numpy_helper.to_array(inits[xdq.input[1]]))
            bs = np.float32(xs * ct.scale)
            bias = float_inits[bbase].astype(np.float64)
            q = np.clip(np.round(bias / float(bs)), -(2**31), 2**31 - 1).astype(np.int32)
            set_init(bname, q)
            old_bs = numpy_helper.to_array(inits[bdq.input[1]])
            set_init(bdq.input[1], np.full(old_bs.shape, bs, dtype=np.float32))


def weight_codes(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{weight initializer: (int8 values, scale)} of the weights a QDQ graph dequantizes
    (a uint8 table with zero point 128, as an embedding's Gather holds, given as int8 codes)."""
    onnx = _require("onnx")
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            arr = numpy_helper.to_array(inits[n.input[0]])
            scale = numpy_helper.to_array(inits[n.input[1]])
            if arr.dtype == np.int8:
                out[n.input[0]] = (arr, scale)
            elif arr.dtype == np.uint8 and len(n.input) > 2 and n.input[2] in inits:
                zp = numpy_helper.to_array(inits[n.input[2]])
                if zp.size == 1 and int(zp) == 128:
                    out[n.input[0]] = ((arr.astype(np.int16) - 128).astype(np.int8), scale)
    return out


class OrtModel(nn.Module):
    """An ONNX Runtime session used like a model: ``logits = m(x)`` on CPU tensors, or
    ``m(*inputs)`` in the graph's input order for several inputs (each converted to its
    input's dtype); one output is returned as a tensor, several as a dict by output name.

    ``load_s`` is the seconds ``InferenceSession`` took to build (graph optimizations
    included). Works with :func:`pqcompress.metrics.classification.evaluate_model`.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        start = time.perf_counter()
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's own errors (InvalidProtobuf, NoSuchFile...)
            detail = " ".join(str(exc).split())[:200]
            raise ModelError(
                f"'{path}' is not an ONNX model ONNX Runtime can load ({detail}); expected a "
                "graph written by `pqcompress export RUN -o FILE.onnx`"
            ) from None
        self.load_s = time.perf_counter() - start
        self.path = Path(path)
        self.inputs = [
            (i.name, _ORT_TYPES.get(i.type, np.float32)) for i in self.session.get_inputs()
        ]
        self.input_name = self.inputs[0][0]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, *xs: torch.Tensor) -> Any:
        if len(xs) != len(self.inputs):
            raise ModelError(
                f"the graph takes {len(self.inputs)} inputs {[n for n, _ in self.inputs]}; "
                f"got {len(xs)}"
            )
        feed = {
            name: (x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)).astype(
                dtype, copy=False
            )
            for (name, dtype), x in zip(self.inputs, xs)
        }
        outs = self.session.run(None, feed)
        if len(outs) == 1:
            return torch.from_numpy(np.asarray(outs[0]))
        return {n: torch.from_numpy(np.asarray(o)) for n, o in zip(self.output_names, outs)}


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def load_onnx(path: str | os.PathLike, *, threads: int | None = None) -> OrtModel:
    """Open an exported graph in ONNX Runtime (CPU) as an :class:`OrtModel`."""
    return OrtModel(path, threads=threads)
