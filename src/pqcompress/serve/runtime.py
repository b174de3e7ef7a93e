"""Load a model for serving: ONNX Runtime (no torch) or torch, warmed up, with its manifest summary.

``load_served_model(settings)`` returns a :class:`ServedModel` or raises ModelLoadError; a
model is either fully loaded and warmed up or not served at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pqcompress.errors import PQCError
from pqcompress.inputspec import InputSpec, as_specs, example_arrays
from pqcompress.serve.errors import ModelLoadError
from pqcompress.serve.preprocess import Preprocessing

if TYPE_CHECKING:  # annotations only: the settings model needs pydantic-settings
    from pqcompress.serve.settings import ServeSettings

METADATA_KEY = "pqcompress.manifest"  # ONNX custom metadata: JSON model summary (optional)
QDQ_OP = b"DequantizeLinear"


@dataclass
class ServedModel:
    """A loaded model: ``logits(x)`` on a float32 batch, its preprocessing and summary.

    A model with named inputs (``inputs``: token ids, masks, several tensors; from its
    manifest or its graph) is run by ``run({name: array})``, which returns its outputs by
    name. ``classifier`` says whether its one output is class logits (answered with labels
    and probabilities) or tensors returned as they are.
    """

    logits: Callable[[np.ndarray], np.ndarray]
    preprocessing: Preprocessing
    class_names: list[str]
    info: dict[str, Any]
    load_s: float = 0.0
    warmup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    outputs: tuple[str, ...] = ("logits",)
    classifier: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def named_inputs(self) -> bool:
        """Whether requests are validated against ``inputs`` (else: one float tensor of
        ``preprocessing.input_shape``, images accepted)."""
        return bool(self.inputs)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs by name for inputs by name."""
        if self.run is not None:
            return self.run(feed)
        (x,) = feed.values()
        return {self.outputs[0]: np.asarray(self.logits(x), dtype=np.float32)}


def check_model_file(model: str | Path) -> Path:
    """The one rule for the service's model argument: an existing file (a .pqz or .onnx);
    ModelLoadError otherwise, before anything starts."""
    path = Path(model)
    if not path.is_file():
        raise ModelLoadError(f"model file '{path}' does not exist (expected a .pqz or .onnx file)")
    return path


def load_served_model(settings: ServeSettings) -> ServedModel:
    """Load ``settings.model`` with ``settings.runtime`` and run one warm-up batch."""
    path = check_model_file(settings.model)
    loader = _RUNTIMES[settings.runtime]
    start = time.perf_counter()
    try:
        served = loader(path, settings)
    except ModelLoadError:
        raise
    except Exception as exc:  # corrupt file, unsupported graph: never serve half a model
        raise ModelLoadError(f"cannot load model '{path}': {_reason(exc)}") from exc
    served.load_s = time.perf_counter() - start
    start = time.perf_counter()
    if served.named_inputs:
        _warm_up_named(served, path)
    else:
        _warm_up(served, path)
    served.warmup_s = time.perf_counter() - start
    served.info.update(
        runtime=settings.runtime,
        load_seconds=round(served.load_s, 4),
        warmup_seconds=round(served.warmup_s, 4),
    )
    _release_freed_memory()
    return served


def _warm_up_named(served: ServedModel, path: Path) -> None:
    """One inference on example inputs of the spec; decides whether the model is a classifier
    (one output [batch, classes] and the file names its classes) and records the outputs."""
    feed = example_arrays(served.inputs, batch=1)
    try:
        outs = served.infer(feed)
    except Exception as exc:
        raise ModelLoadError(f"model '{path}' fails its warm-up inference: {_reason(exc)}") from exc
    served.outputs = tuple(outs)
    known = int(served.info.get("num_classes") or 0)
    first = np.asarray(next(iter(outs.values())))
    served.classifier = (
        len(outs) == 1 and first.ndim == 2 and known > 0 and first.shape == (1, known)
    )
    if not served.classifier:
        served.class_names = []
    served.info.update(
        inputs=[s.to_dict() for s in served.inputs],
        outputs=[
            {"name": n, "shape": ["batch", *list(np.asarray(o).shape[1:])]} for n, o in outs.items()
        ],
        task="classification" if served.classifier else "tensors",
        num_classes=len(served.class_names),
        class_names=list(served.class_names),
    )


def _warm_up(served: ServedModel, path: Path) -> None:
    try:
        x = np.zeros((1, *served.preprocessing.input_shape), dtype=np.float32)
        out = np.asarray(served.logits(x))
    except Exception as exc:
        raise ModelLoadError(f"model '{path}' fails its warm-up inference: {_reason(exc)}") from exc
    if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] != served.num_classes:
        raise ModelLoadError(
            f"model '{path}' returns shape {list(out.shape)} for one input; expected "
            f"[1, {served.num_classes}] (one logit per class)"
        )
    served.info.update(task="classification")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _release_freed_memory() -> None:
    """Give the decoder's freed buffers back to the OS (glibc keeps them in its arenas)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _ort_session(
    model: bytes | str, settings: ServeSettings, weights: dict[str, Any] | None = None
) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if weights:
        names = list(weights)
        opts.add_external_initializers(
            names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names]
        )
    opts.intra_op_num_threads = int(settings.threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _load_onnxruntime(path: Path, settings: ServeSettings) -> ServedModel:
    if path.suffix.lower() == ".onnx":
        blob = path.read_bytes()
        session = _ort_session(blob, settings)
        meta = session.get_modelmeta().custom_metadata_map
        info = json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}
        info.setdefault("format", "onnx")
    else:
        portable = _portable()
        info = dict(portable.model_info(str(path)))
        info.setdefault("format", "pqz")
        if settings.ort_weights == "external":
            # ONNX Runtime copies external initializers into its own buffers when the session
            # is created: the decoded arrays are dropped right after (measured on VGG16:
            # 193 MiB resident instead of 321 MiB with a serialized model, same answers)
            blob, weights = portable.onnx_graph_and_weights(str(path), int8=settings.int8)
            session = _ort_session(blob, settings, weights)
            del weights
        else:
            blob = portable.onnx_model_bytes(str(path), int8=settings.int8)
            session = _ort_session(blob, settings)
    info.setdefault("file_bytes", path.stat().st_size)
    # a QDQ graph names its op types as plain strings in the protobuf
    info["int8"] = QDQ_OP in blob
    if settings.int8 and not info["int8"]:
        raise ModelLoadError(
            f"int8 kernels were required (PQC_INT8=1) but '{path}' has no int8 (QDQ) graph"
        )
    del blob
    specs = _named_specs(info, session, path)
    if specs is not None:
        out_names = [o.name for o in session.get_outputs()]
        # the exporter drops inputs the model never reads: they are checked, not fed
        used = {i.name for i in session.get_inputs()}

        def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(out_names, session.run(None, {k: feed[k] for k in feed if k in used})))

        return _named_model(specs, run, info, {"session": session})
    inp = session.get_inputs()[0]
    out = session.get_outputs()[0]
    shape = info.get("input_shape") or [d for d in inp.shape[1:]]
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise ModelLoadError(
            f"model '{path}' has no fixed input shape (graph input {inp.shape}); export it "
            "with a fixed sample shape"
        )
    num_classes = info.get("num_classes") or (
        out.shape[-1] if isinstance(out.shape[-1], int) else 0
    )
    names = _class_names(info.get("class_names"), int(num_classes or 0))
    info.update(input_shape=[int(d) for d in shape], num_classes=len(names), class_names=names)
    name = inp.name

    def logits(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    pre = Preprocessing.from_manifest(shape, info.get("preprocessing"))
    return ServedModel(logits, pre, names, info, extra={"session": session})


_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _named_specs(info: dict[str, Any], session: Any, path: Path) -> tuple[InputSpec, ...] | None:
    """The inputs to validate requests against: the manifest's ``inputs`` (a .pqz saved with
    ``inputs=``), else the graph's own when it does not take one float tensor; None for the
    one-float-input models (images and plain tensors)."""
    if info.get("inputs"):
        try:
            return as_specs(info["inputs"])
        except PQCError as exc:
            raise ModelLoadError(f"model '{path}' records unusable inputs: {exc}") from None
    ins = session.get_inputs()
    if len(ins) == 1 and ins[0].type == "tensor(float)":
        return None
    specs = []
    for i in ins:
        dtype = _ORT_DTYPES.get(i.type)
        if dtype is None:
            raise ModelLoadError(f"model '{path}': input '{i.name}' has type {i.type}, not served")
        dims: list[int | str] = [
            d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else f"dim{k}")
            for k, d in enumerate(i.shape)
        ]
        if not dims or isinstance(dims[0], int):
            raise ModelLoadError(
                f"model '{path}': input '{i.name}' {i.shape} has no dynamic batch axis; export "
                "it with a named first dimension"
            )
        dims[0] = "batch"
        specs.append(InputSpec(i.name, dtype, tuple(dims)))
    try:
        return as_specs(specs)
    except PQCError as exc:
        raise ModelLoadError(f"model '{path}': {exc}") from None


def _named_model(
    specs: tuple[InputSpec, ...],
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    info: dict[str, Any],
    extra: dict[str, Any],
) -> ServedModel:
    first = specs[0].sample_shape
    shape = tuple(int(d) for d in first) if all(isinstance(d, int) for d in first) else ()
    pre = Preprocessing.from_manifest(shape, {"kind": "tensors"})
    names = _class_names(info.get("class_names"), int(info.get("num_classes") or 0))

    def logits(x: np.ndarray) -> np.ndarray:  # the first output for the first input
        return next(iter(run({specs[0].name: x}).values()))

    return ServedModel(logits, pre, names, info, extra=extra, inputs=specs, run=run)


def _load_torch(path: Path, settings: ServeSettings) -> ServedModel:
    if path.suffix.lower() == ".onnx":
        raise ModelLoadError(
            f"--runtime torch needs a .pqz file; '{path}' is ONNX (serve it with onnxruntime)"
        )
    import torch

    import pqcompress

    torch.set_num_threads(int(settings.threads))
    info = _pqz_info(path)
    model = pqcompress.load(str(path), model=settings.factory).eval()
    if info.get("inputs"):
        try:
            specs = as_specs(info["inputs"])
        except PQCError as exc:
            raise ModelLoadError(f"model '{path}' records unusable inputs: {exc}") from None
        assert specs is not None

        def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            args = [torch.from_numpy(feed[s.name]) for s in specs]
            with torch.inference_mode():
                return _torch_outputs(model(*args))

        info["int8"] = False
        return _named_model(specs, run, info, {"module": model})

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    shape = info["input_shape"]
    names = _class_names(info.get("class_names"), int(info.get("num_classes") or 0))
    info.update(num_classes=len(names), class_names=names, int8=False)
    pre = Preprocessing.from_manifest(shape, info.get("preprocessing"))
    return ServedModel(logits, pre, names, info, extra={"module": model})


def _torch_outputs(out: Any) -> dict[str, np.ndarray]:
    """A model's output as named arrays, named as the exported graph names them: a tensor
    ``logits``; a mapping (dict, ModelOutput) by key; a tuple ``output_i`` (one: ``logits``)."""
    import torch

    def arr(t: Any) -> np.ndarray:
        return t.float().numpy() if t.is_floating_point() else t.numpy()

    if torch.is_tensor(out):
        return {"logits": arr(out)}
    if isinstance(out, dict) or hasattr(out, "items"):
        return {str(k): arr(v) for k, v in out.items() if torch.is_tensor(v)}
    if isinstance(out, (tuple, list)):
        idx = [i for i, v in enumerate(out) if torch.is_tensor(v)]
        if len(idx) == 1:
            return {"logits": arr(out[idx[0]])}
        return {f"output_{i}": arr(out[i]) for i in idx}
    raise TypeError(f"the model returns {type(out).__name__}, not tensors")


def _pqz_info(path: Path) -> dict[str, Any]:
    info = dict(_portable().model_info(str(path)))
    info.setdefault("format", "pqz")
    return info


def _portable() -> Any:
    try:
        from pqcompress.codec import portable
    except ImportError as exc:  # pragma: no cover - part of this package
        raise ModelLoadError(f"reading .pqz files needs pqcompress.codec.portable: {exc}") from None
    return portable


def _class_names(names: Any, num_classes: int) -> list[str]:
    if (
        isinstance(names, (list, tuple))
        and names
        and (not num_classes or len(names) == num_classes)
    ):
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


_RUNTIMES: dict[str, Callable[[Path, ServeSettings], ServedModel]] = {
    "onnxruntime": _load_onnxruntime,
    "torch": _load_torch,
}
