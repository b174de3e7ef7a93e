"""Reading .pqz files with numpy only (no torch, numba or onnx): manifest, arrays, ONNX graphs.

For processes that serve a model without PyTorch (``pqcompress serve``'s default runtime):

- ``read_manifest(path)``: the validated manifest;
- ``read_arrays(path)``: (manifest, {name: numpy array}), bit-identical to ``pqcompress.load``;
- ``model_info(path)``: a JSON-safe summary (architecture, compression, sparsity, graphs...);
- ``onnx_model_bytes(path, int8=None)``: a complete ONNX model from an embedded graph plus
  the decoded weights (int8 codes for the int8 graph), ready for ``onnxruntime``.

The checks are the torch reader's (docs/format.md §7): header, manifest checksum, sizes
before inflating, payload checksums, bounded inflation, structure after decoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pqcompress.codec import container, entropy
from pqcompress.codec.entries import ITEMSIZE, entry_runs_on_int8, numel
from pqcompress.codec.errors import FormatError, GraphError
from pqcompress.codec.npdecode import decode_codes_only, decode_entry

DEFAULT_MAX_DECODED_BYTES = container.DEFAULT_MAX_DECODED_BYTES
REEXPORT_HINT = (
    "save it again with a graph: for your own model, `pqcompress.save(model, path, "
    "compressor=comp, onnx='float32', input_shape=(C, H, W))` (or inputs=[pqcompress.InputSpec"
    "(name, dtype, shape), ...] for token ids or several inputs; onnx='all' with "
    "calibration=... adds the int8 graph); for a run, `pqcompress export RUN_DIR -o model.pqz` (the onnx "
    "package installed)"
)


def _open(path: str | Path) -> tuple[dict[str, Any], memoryview, str]:
    p = Path(path)
    manifest, payload = container.split_file(container.map_file(p), str(p))
    return manifest, payload, str(p)


def read_manifest(
    path: str | Path, *, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> dict[str, Any]:
    """The manifest of a .pqz file after every check that needs no inflation."""
    manifest, _, _ = _open(path)
    container.validate(manifest, max_decoded_bytes)
    return manifest


def _inflate(where: str, what: str, section: dict, payload: memoryview) -> bytes:
    stored = container.check_payload(where, what, section, payload)
    try:
        return entropy.decompress(section["codec"], stored, section["raw_length"])
    except FormatError as exc:
        raise type(exc)(f"'{where}': {what}: {exc}") from None


def _decode(
    path: str | Path, max_decoded_bytes: int, codes_for: set[str] | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray], memoryview, str]:
    manifest, payload, where = _open(path)
    maps = container.validate(manifest, max_decoded_bytes)
    arrays: dict[str, np.ndarray] = {}
    codes: dict[str, np.ndarray] = {}
    for entry, smap in zip(manifest["tensors"], maps, strict=True):
        name = entry["name"]
        raws = {
            s["role"]: _inflate(where, f"tensor '{name}'", s, payload) for s in entry["sections"]
        }
        want = codes_for is not None and name in codes_for
        try:
            values, c = decode_entry(entry, smap, raws, want_codes=want)
        except (FormatError, ValueError) as exc:
            raise FormatError(f"'{where}': tensor '{name}': {exc}") from None
        arrays[name] = values
        if c is not None:
            codes[name] = c
    return manifest, arrays, codes, payload, where


def read_arrays(
    path: str | Path, *, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(manifest, {state-dict name: numpy array}); checksums verified, values bit-exact."""
    manifest, arrays, _, _, _ = _decode(path, max_decoded_bytes)
    return manifest, arrays


def _compressed(entry: dict) -> bool:
    return entry.get("encoding") == "codes" or entry.get("kind", "none") != "none"


def int8_by_default(manifest: dict[str, Any]) -> bool:
    """True when an int8 graph is embedded and every compressed tensor's form runs natively
    on int8 kernels (uniform/quantize codes of <= 8 bits): what ``int8=None`` picks."""
    names = {g["name"] for g in manifest.get("graphs") or []}
    compressed = [e for e in manifest["tensors"] if _compressed(e)]
    return "int8" in names and all(entry_runs_on_int8(e) for e in compressed)


def _tensor_row(e: dict[str, Any]) -> dict[str, Any]:
    """One tensor of :func:`model_info`."""
    n = numel(e["shape"])
    return {
        "name": e["name"],
        "shape": list(e["shape"]),
        "dtype": e["dtype"],
        "compressed": _compressed(e),
        "form": e["kind"],
        "bits": e.get("bits"),
        "native_int8": entry_runs_on_int8(e),
        "layout": e["layout"],
        "nnz": int(e["nnz"]),
        "sparsity": 1.0 - int(e["nnz"]) / n if n else 0.0,
        "stored_bytes": sum(int(s["length"]) for s in e["sections"]),
    }


def _compression_summary(manifest: dict[str, Any], settings: Any) -> dict[str, Any]:
    """What was compressed and how: settings recorded at save time, else read off the
    tensors (forms and bit widths used)."""
    forms: dict[str, int] = {}
    bits_used: set[int] = set()
    for e in manifest["tensors"]:
        if _compressed(e):
            forms[e["kind"]] = forms.get(e["kind"], 0) + 1
            if e.get("bits") is not None:
                bits_used.add(int(e["bits"]))
    cfg = settings if isinstance(settings, dict) else {}
    return {
        "alpha": cfg.get("alpha"),
        "bits": cfg.get("bits", sorted(bits_used)[0] if len(bits_used) == 1 else None),
        "form": cfg.get("form", next(iter(forms)) if len(forms) == 1 else None),
        "settings": settings,
        "compressed_tensors": sum(forms.values()),
        "forms": forms,
        "bits_used": sorted(bits_used),
        "all_native_int8": bool(forms)
        and all(entry_runs_on_int8(e) for e in manifest["tensors"] if _compressed(e)),
    }


def model_info(path: str | Path) -> dict[str, Any]:
    """A JSON-safe summary of a .pqz file (no payload is inflated)."""
    manifest = read_manifest(path)
    model = manifest.get("model") or {}
    meta = manifest.get("metadata") or {}
    settings = meta.get("compression") if isinstance(meta, dict) else None
    rows = [_tensor_row(e) for e in manifest["tensors"]]
    params = sum(numel(e["shape"]) for e in manifest["tensors"])
    nnz = sum(int(e["nnz"]) for e in manifest["tensors"])
    file_bytes = Path(path).stat().st_size
    float32_bytes = sum(
        numel(e["shape"]) * max(4, ITEMSIZE[e["dtype"]]) for e in manifest["tensors"]
    )
    graphs = [
        {
            "name": g["name"],
            "format": g["format"],
            "opset": g.get("opset"),
            "stored_bytes": int(g["length"]),
            "weights_attached": len(g["initializers"]),
        }
        for g in manifest.get("graphs") or []
    ]
    return {
        "format_version": manifest["format_version"],
        "writer": manifest.get("writer"),
        "architecture": {
            "name": model.get("name", "custom"),
            "model_args": model.get("model_args") or {},
        },
        "num_classes": model.get("num_classes"),
        "class_names": manifest.get("class_names"),
        "input_shape": model.get("input_shape"),
        "inputs": model.get("inputs"),
        "shrunk": model.get("shrunk") if isinstance(model.get("shrunk"), dict) else None,
        "preprocessing": manifest.get("preprocessing"),
        "compression": _compression_summary(manifest, settings),
        "params": params,
        "nnz": nnz,
        "sparsity": 1.0 - nnz / params if params else 0.0,
        "density": nnz / params if params else 0.0,
        "file_bytes": file_bytes,
        "float32_bytes": float32_bytes,
        "ratio_float32": float32_bytes / file_bytes if file_bytes else None,
        # a shrunk file: against the float32 dense model it was shrunk from
        "ratio_unshrunk_float32": (
            shrunk_before / file_bytes if (shrunk_before := unshrunk_bytes(manifest)) else None
        ),
        "float_dtype": manifest.get("float_dtype"),
        "lossy": bool(manifest.get("lossy", False)),
        "graphs": graphs,
        "default_graph": (("int8" if int8_by_default(manifest) else "float32") if graphs else None),
        "tensors": rows,
    }


def unshrunk_bytes(manifest: dict[str, Any]) -> int | None:
    """A shrunk file's record of the float32 dense bytes of the model before its channels were
    removed (``model.shrunk.float32_bytes_before``); None for any other file."""
    shrunk = (manifest.get("model") or {}).get("shrunk")
    if isinstance(shrunk, dict) and isinstance(shrunk.get("float32_bytes_before"), int):
        return int(shrunk["float32_bytes_before"])
    return None


def _graph_record(
    path: str | Path, int8: bool | None, max_decoded_bytes: int
) -> tuple[bytes, dict[str, np.ndarray]]:
    """The chosen embedded graph (without its weights) and its weights by initializer name."""
    manifest = read_manifest(path, max_decoded_bytes=max_decoded_bytes)
    graphs = {g["name"]: g for g in manifest.get("graphs") or []}
    if not graphs:
        raise GraphError(f"'{path}' embeds no ONNX graph; {REEXPORT_HINT}")
    if int8 is None:
        name = "int8" if int8_by_default(manifest) else "float32"
        if name not in graphs:
            name = next(iter(graphs))
    else:
        name = "int8" if int8 else "float32"
    if name not in graphs:
        raise GraphError(
            f"'{path}' embeds no {name} ONNX graph (it has: {', '.join(graphs)}); {REEXPORT_HINT}"
        )
    g = graphs[name]
    raw, weights = _graph_weights(path, g, max_decoded_bytes)
    return raw, weights


def _graph_weights(
    path: str | Path, g: dict[str, Any], max_decoded_bytes: int
) -> tuple[bytes, dict[str, np.ndarray]]:
    """(graph bytes, its initializers) decoding only the tensors the graph takes, one at a
    time, each straight to the array the graph wants: an int8 graph's coded weights become
    int8 codes without their float values ever being built (the load-time peak of a served
    int8 model was its float weights, decoded and dropped)."""
    manifest, payload, where = _open(path)
    maps = container.validate(manifest, max_decoded_bytes)
    by_tensor: dict[str, list[dict[str, Any]]] = {}
    for rec in g["initializers"]:
        by_tensor.setdefault(rec["tensor"], []).append(rec)
    out: dict[str, np.ndarray] = {}
    for entry, smap in zip(manifest["tensors"], maps, strict=True):
        recs = by_tensor.get(entry["name"])
        if not recs:
            continue
        name = entry["name"]
        raws = {
            s["role"]: _inflate(where, f"tensor '{name}'", s, payload) for s in entry["sections"]
        }
        arrays: dict[str, np.ndarray] = {}
        codes: dict[str, np.ndarray] = {}
        try:
            if all(r["source"] == "codes" for r in recs):
                only = decode_codes_only(entry, smap, raws)
                if only is not None:
                    codes[name] = only
            if not codes:
                want = any(r["source"] == "codes" for r in recs)
                values, c = decode_entry(entry, smap, raws, want_codes=want)
                arrays[name] = values
                if c is not None:
                    codes[name] = c
        except (FormatError, ValueError) as exc:
            raise FormatError(f"'{where}': tensor '{name}': {exc}") from None
        del raws
        out.update(initializer_arrays({**g, "initializers": recs}, arrays, codes, where))
    missing = [r["tensor"] for r in g["initializers"] if r["name"] not in out]
    if missing:
        raise FormatError(f"'{where}': graph '{g['name']}' takes tensor '{missing[0]}', absent")
    raw = _inflate(where, f"graph '{g['name']}'", g, payload)
    return raw, out


def onnx_model_bytes(
    path: str | Path,
    *,
    int8: bool | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> bytes:
    """A serialized ONNX model: an embedded graph with the file's weights attached.

    ``int8=False``: the float32 graph with the decoded (bit-exact) weights; ``int8=True``: the
    static int8 QDQ graph whose int8 weights are the trained codes (uniform/quantize forms);
    ``None``: int8 when :func:`int8_by_default`, else float32. Raises GraphError when the file
    has no such graph.
    """
    raw, weights = _graph_record(path, int8, max_decoded_bytes)
    return attach_initializers(raw, weights)


def onnx_graph_and_weights(
    path: str | Path,
    *,
    int8: bool | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> tuple[bytes, dict[str, np.ndarray]]:
    """The same graph as :func:`onnx_model_bytes` without a serialized copy of its weights:
    each initializer is a placeholder that declares external data, and the weights come back
    as arrays by initializer name, for ONNX Runtime's
    ``SessionOptions.add_external_initializers(names, [OrtValue...])`` (which takes them in
    place of any file, copying them into the session: they may be dropped once it exists)."""
    raw, weights = _graph_record(path, int8, max_decoded_bytes)
    return attach_placeholders(raw, weights), weights


ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int8): 3}  # TensorProto.DataType


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | memoryview) -> list:
    """A length-delimited protobuf field (wire type 2) as parts to join."""
    return [_varint(number << 3 | 2), _varint(len(payload)), payload]


def _tensor_proto(name: str, arr: np.ndarray) -> list:
    """An ONNX TensorProto (dims, data_type, name, raw_data) in protobuf wire format."""
    head = b"".join(_varint(1 << 3) + _varint(int(d)) for d in arr.shape)  # dims: field 1
    head += _varint(2 << 3) + _varint(ONNX_TYPES[arr.dtype])  # data_type: field 2
    head += b"".join(_field(8, name.encode("utf-8")))  # name: field 8
    raw = memoryview(np.ascontiguousarray(arr)).cast("B")  # little-endian on every host we run
    return [head, *_field(9, raw)]  # raw_data: field 9


def initializer_arrays(
    record: dict[str, Any],
    arrays: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    where: str = "<graph>",
) -> dict[str, np.ndarray]:
    """The weights the writer took out of a graph, by initializer name, as the graph wants
    them (int8 codes, or float32 values; transposed where the graph stores them so)."""
    out: dict[str, np.ndarray] = {}
    for rec in record["initializers"]:
        if rec["source"] == "codes":
            arr = codes[rec["tensor"]].astype(np.int8)
        elif rec["source"] == "values-gates":  # an RNN weight in ONNX's gate order
            blocks = np.split(arrays[rec["tensor"]], len(rec["gates"]))
            arr = np.concatenate([blocks[g] for g in rec["gates"]])[None]
        else:
            arr = arrays[rec["tensor"]]
            if arr.dtype != np.float32:
                raise FormatError(
                    f"'{where}': graph '{record['name']}' takes float32 values from tensor "
                    f"'{rec['tensor']}' of dtype {arr.dtype}"
                )
        if rec["transpose"]:
            arr = arr.T
        out[rec["name"]] = np.ascontiguousarray(arr)
    return out


def _append_initializers(graph_bytes: bytes, tensors: list[list]) -> bytes:
    """Protobuf merges concatenated messages (a repeated field's elements are appended, a
    singular message field is merged), so the result is the stored ``ModelProto`` followed by
    a ``ModelProto`` whose graph (field 7) holds only the initializers (GraphProto field 5)."""
    inits: list = []
    for tensor in tensors:
        size = sum(len(p) for p in tensor)
        inits += [_varint(5 << 3 | 2), _varint(size), *tensor]
    graph_size = sum(len(p) for p in inits)
    return b"".join([graph_bytes, _varint(7 << 3 | 2), _varint(graph_size), *inits])


def attach_initializers(graph_bytes: bytes, weights: dict[str, np.ndarray]) -> bytes:
    """Put the weights the writer took out of a graph back in, by initializer name: one copy
    of the weights, no protobuf round trip (which took seconds for VGG16)."""
    if np.little_endian is False:  # pragma: no cover - raw_data must be little-endian
        raise GraphError("rebuilding ONNX graphs needs a little-endian host")
    return _append_initializers(graph_bytes, [_tensor_proto(n, a) for n, a in weights.items()])


def _placeholder_proto(name: str, arr: np.ndarray) -> list:
    """A TensorProto with dims, type and name whose data is external (data_location field 14
    = EXTERNAL, external_data field 13 = {location: ...}): ONNX Runtime takes the values from
    ``add_external_initializers`` instead of reading any file."""
    head = b"".join(_varint(1 << 3) + _varint(int(d)) for d in arr.shape)
    head += _varint(2 << 3) + _varint(ONNX_TYPES[arr.dtype])
    head += b"".join(_field(8, name.encode("utf-8")))
    entry = b"".join([*_field(1, b"location"), *_field(2, b"pqz-weights")])
    head += b"".join(_field(13, entry))
    head += _varint(14 << 3) + _varint(1)
    return [head]


def attach_placeholders(graph_bytes: bytes, weights: dict[str, np.ndarray]) -> bytes:
    """The graph with a metadata-only placeholder per weight (see :func:`_placeholder_proto`)."""
    return _append_initializers(graph_bytes, [_placeholder_proto(n, a) for n, a in weights.items()])
