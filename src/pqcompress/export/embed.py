"""ONNX graphs to embed in a .pqz file: exported, then stripped of the weights the file stores.

``graph_payloads`` exports the float32 graph (BatchNorm kept: folding would change the
weights, which then could not be shared with the file's tensors; ONNX Runtime fuses it when it
opens the session) and, on request, the int8 QDQ graph of :func:`export_onnx` (trained codes
as int8 weights). Every initializer that equals a stored tensor bit for bit (float32 values,
possibly transposed) or the int8 codes of a uniform/quantize tensor is taken out and recorded
by name; the portable reader puts them back (``pqcompress.codec.portable``).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pqcompress.export.onnx import _export_float, _require, export_onnx, on_cpu
from pqcompress.inputspec import InputSpec

MIN_STRIP_BYTES = 256  # smaller initializers stay in the graph (a record costs manifest bytes)


def _candidates(arrays: Mapping[str, np.ndarray]) -> dict[tuple, list[str]]:
    out: dict[tuple, list[str]] = {}
    for name, arr in arrays.items():
        out.setdefault((arr.dtype.str, arr.shape), []).append(name)
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical (so -0.0 differs from +0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _gate_record(
    name: str,
    arr: np.ndarray,
    values: Mapping[str, np.ndarray],
    by_value: Mapping[tuple, list[str]],
) -> dict[str, Any] | None:
    """The record of an LSTM/GRU weight the exporter laid out ONNX's way ([1, gates * hidden,
    in], gate blocks reordered), when it is one of ``values``; else None."""
    from pqcompress.codec.container import GATE_ORDERS

    if arr.dtype != np.float32 or arr.ndim != 3 or arr.shape[0] != 1:
        return None
    for order in GATE_ORDERS:
        if arr.shape[1] % len(order):
            continue
        for tensor in by_value.get((arr.dtype.str, arr.shape[1:]), []):
            blocks = np.split(values[tensor], len(order))
            if _same(np.concatenate([blocks[g] for g in order])[None], arr):
                return {
                    "name": name,
                    "tensor": tensor,
                    "source": "values-gates",
                    "transpose": False,
                    "gates": list(order),
                }
    return None


def strip_initializers(
    model_proto: Any, values: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Remove initializers equal to ``values`` (float32) or ``codes`` (int8) from the graph;
    return the records that put them back."""
    from onnx import numpy_helper

    by_value = _candidates(values)
    by_code = _candidates(codes)
    records, keep = [], []
    for init in model_proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        rec = None
        if arr.nbytes >= MIN_STRIP_BYTES and arr.dtype in (np.float32, np.int8):
            pool, source = (values, "values") if arr.dtype == np.float32 else (codes, "codes")
            index = by_value if source == "values" else by_code
            for transpose in (False, True):
                if transpose and arr.ndim != 2:
                    break
                shape = arr.shape[::-1] if transpose else arr.shape
                for name in index.get((arr.dtype.str, shape), []):
                    cand = pool[name].T if transpose else pool[name]
                    if _same(np.ascontiguousarray(cand), arr):
                        rec = {"name": init.name, "tensor": name, "source": source}
                        rec["transpose"] = transpose
                        break
                if rec is not None:
                    break
        if rec is None and arr.nbytes >= MIN_STRIP_BYTES:
            rec = _gate_record(init.name, arr, values, by_value)
        if rec is None:
            keep.append(init)
        else:
            records.append(rec)
    del model_proto.graph.initializer[:]
    model_proto.graph.initializer.extend(keep)
    return records


def graph_payloads(
    model: nn.Module,
    decoded: Mapping[str, torch.Tensor],
    native_codes: Mapping[str, np.ndarray],
    compressor: Any,
    *,
    inputs: Sequence[InputSpec],
    int8: bool,
    calibration: Iterable[Any] | None,
    opset: int = 17,
    output: str | int | None = None,
) -> list[tuple[dict[str, Any], bytes]]:
    """[(graph record without its section fields, serialized stripped graph)] for the float32
    graph and, with ``int8``, the int8 QDQ graph (``calibration`` batches needed); the
    graphs' inputs are ``inputs`` (names, dtypes, dynamic axes), their outputs as
    :func:`pqcompress.export.export_onnx` names them."""
    onnx = _require("onnx")
    model = on_cpu(model)  # a model trained on a GPU: its graphs are traced on a CPU copy
    state = model.state_dict()
    if any(not torch.equal(state[k], decoded[k]) for k in decoded if k in state):
        model = copy.deepcopy(model)  # lossy storage: the graph must hold what the file holds
        model.load_state_dict(dict(decoded), strict=True)
    values = {
        k: v.detach().cpu().numpy()
        for k, v in decoded.items()
        if v.dtype == torch.float32 and v.numel() * 4 >= MIN_STRIP_BYTES
    }
    codes = {k: c.astype(np.int8) for k, c in native_codes.items()}
    was_training = model.training
    out = []
    try:
        blob, outputs = _export_float(model, inputs, opset, fold_batchnorm=False, output=output)
        graphs = [("float32", onnx.load_from_string(blob))]
        if int8:
            with tempfile.TemporaryDirectory(prefix="pqc-embed-") as tmp:
                qpath = export_onnx(
                    model,
                    Path(tmp) / "int8.onnx",
                    inputs=inputs,
                    output=output,
                    int8=True,
                    calibration=calibration,
                    opset=opset,
                    compressed=compressor,
                )
                graphs.append(("int8", onnx.load(str(qpath))))
    finally:
        model.train(was_training)
    for name, proto in graphs:
        records = strip_initializers(proto, values, codes)
        record = {
            "name": name,
            "format": "onnx",
            "opset": int(opset),
            "input_name": inputs[0].name,
            "output_name": outputs[0],
            "input_shape": list(inputs[0].shape),
            "inputs": [s.to_dict() for s in inputs],
            "outputs": list(outputs),
            "initializers": records,
        }
        out.append((record, proto.SerializeToString()))
    return out
