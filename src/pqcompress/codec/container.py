"""The .pqz byte layout: fixed header, JSON manifest, payload area; manifest validation.

::

    offset  size  field
    0       8     magic b"\\x89PQZ\\r\\n\\x1a\\n"
    8       4     format version, uint32 little-endian
    12      4     flags, uint32 little-endian: bit 0 = the manifest is Deflate-compressed
                  (zlib stream); other bits must be 0
    16      8     manifest length M in bytes (as stored), uint64 little-endian
    24      32    SHA-256 of the M stored manifest bytes
    56      M     manifest: UTF-8 JSON (zlib-compressed when flag bit 0 is set)
    56 + M  P     payload area (P = manifest["payload_bytes"]); section offsets are relative
                  to its start. The file ends exactly at 56 + M + P.

Integrity: versions 1 and 2 hold a SHA-256 per payload section; version 3 holds one SHA-256 of
the whole payload area instead (``payload_sha256``), checked before any section is read: 32
bytes instead of 32 per section, which is a third of a 10 KB file's manifest. The writer's
default (``integrity="auto"``) uses version 3 for payloads of at most ``COMPACT_MAX_PAYLOAD``.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from pqcompress.codec import bitpack, entropy, layouts
from pqcompress.codec.entries import (
    CODE_KINDS,
    FLOAT32_MAX,
    ITEMSIZE,
    MAX_ELEMENTS,
    code_limit,
    entry_runs_on_int8,
    numel,
    storage_allowed,
    value_count,
)
from pqcompress.codec.errors import ChecksumError, DecompressionBombError, FormatError, VersionError
from pqcompress.codec.symbols import SymbolMap, parse_symbol_map
from pqcompress.errors import ConfigError

MAGIC = b"\x89PQZ\r\n\x1a\n"
FORMAT_VERSION = 1  # files without embedded graphs: readable by every pqcompress reader
GRAPHS_FORMAT_VERSION = 2  # version 1 plus the optional "graphs" list (embedded ONNX graphs)
COMPACT_FORMAT_VERSION = 3  # version 2 plus one payload digest instead of one per section
READABLE_VERSIONS = (FORMAT_VERSION, GRAPHS_FORMAT_VERSION, COMPACT_FORMAT_VERSION)
COMPACT_MAX_PAYLOAD = 1 << 20  # integrity="auto": larger payloads keep per-section digests
INTEGRITY = ("auto", "sections", "payload")
GRAPH_NAMES = ("float32", "int8")
GRAPH_INIT_SOURCES = ("values", "codes", "values-gates")
# "values-gates": an LSTM/GRU weight as ONNX lays it out, [1, gates * hidden, in] with the
# gate blocks in ONNX's order: ``gates`` lists which of the tensor's row blocks comes first
GATE_ORDERS = ([0, 3, 1, 2], [1, 0, 2])  # LSTM (i f g o -> i o f c), GRU (r z n -> z r n)
HEADER = struct.Struct("<8sIIQ32s")
HEADER_SIZE = HEADER.size  # 56
MAX_MANIFEST_BYTES = 64 << 20
DEFAULT_MAX_DECODED_BYTES = 16 << 30
VALUE_KINDS = ("prune", "none")
ROLES = {
    "dense": ("values",),
    "bitmap": ("mask", "values"),
    "csr": ("indptr", "indices", "values"),
    "csc": ("indptr", "indices", "values"),
}


FLAG_DEFLATED_MANIFEST = 1


def header(
    stored_manifest: bytes, flags: int = FLAG_DEFLATED_MANIFEST, version: int = FORMAT_VERSION
) -> bytes:
    digest = hashlib.sha256(stored_manifest).digest()
    return HEADER.pack(MAGIC, version, flags, len(stored_manifest), digest)


def store_manifest(text: bytes) -> bytes:
    """The manifest as stored (Deflate, flag bit 0)."""
    return zlib.compress(text, 9)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(manifest, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"metadata/preprocessing/class_names must be plain JSON data: {exc}"
        ) from None
    return text.encode("utf-8")


def map_file(path: str | Path) -> Any:
    """The bytes of a .pqz file to hand to ``split_file``, memory-mapped read-only: the header,
    the manifest and the declared sizes are checked before a payload page is read, so a huge
    or sparse file that lies about its size costs nothing. FormatError for a missing or
    unreadable path (a name too long, a permission)."""
    p = Path(path)
    try:
        if not p.is_file():
            raise FormatError(f"'{p}' does not exist or is not a file")
        with p.open("rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise FormatError(f"'{p}' cannot be read: {exc.strerror or exc}") from None


def split_file(data: bytes, where: str) -> tuple[dict[str, Any], memoryview]:
    """Check header, manifest checksum and total size; return (manifest, payload area)."""
    if len(data) < HEADER_SIZE:
        if not MAGIC.startswith(bytes(data[: len(MAGIC)])):
            raise FormatError(f"'{where}' is not a .pqz file (bad magic bytes)")
        raise FormatError(f"'{where}' is truncated: {len(data)} bytes, shorter than the header")
    magic, version, flags, mlen, digest = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError(f"'{where}' is not a .pqz file (bad magic bytes)")
    if version not in READABLE_VERSIONS:
        raise VersionError(
            f"'{where}' has .pqz format version {version}; this pqcompress reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade pqcompress to read it)"
        )
    if mlen > MAX_MANIFEST_BYTES:
        raise FormatError(f"'{where}' declares a {mlen}-byte manifest (limit {MAX_MANIFEST_BYTES})")
    if HEADER_SIZE + mlen > len(data):
        raise FormatError(f"'{where}' is truncated inside its manifest")
    if flags & ~FLAG_DEFLATED_MANIFEST:
        raise FormatError(f"'{where}' sets unknown header flags {flags:#x}")
    raw = bytes(data[HEADER_SIZE : HEADER_SIZE + mlen])
    if hashlib.sha256(raw).digest() != digest:
        raise ChecksumError(
            f"'{where}': the manifest does not match its checksum (corrupt or tampered)"
        )
    if flags & FLAG_DEFLATED_MANIFEST:
        d = zlib.decompressobj()
        try:
            raw = d.decompress(raw, MAX_MANIFEST_BYTES + 1)
        except zlib.error as exc:
            raise FormatError(f"'{where}': the manifest cannot be inflated: {exc}") from None
        if len(raw) > MAX_MANIFEST_BYTES or d.unconsumed_tail:
            raise DecompressionBombError(
                f"'{where}': the manifest inflates beyond {MAX_MANIFEST_BYTES} bytes"
            )
        if not d.eof:
            raise FormatError(f"'{where}': the compressed manifest is incomplete")
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"'{where}': the manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise FormatError(f"'{where}': the manifest nests too deeply to be a manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "pqz":
        raise FormatError(f"'{where}': the manifest is not a .pqz manifest")
    if manifest.get("format_version") != version:
        raise VersionError(
            f"'{where}': manifest format version {manifest.get('format_version')!r} differs "
            f"from the header's {version}"
        )
    payload_bytes = manifest.get("payload_bytes")
    if not _is_int(payload_bytes) or payload_bytes < 0:
        raise FormatError(f"'{where}': manifest payload_bytes is missing or invalid")
    end = HEADER_SIZE + mlen + payload_bytes
    if len(data) < end:
        raise FormatError(f"'{where}' is truncated: {len(data)} bytes, expected {end}")
    if len(data) > end:
        raise FormatError(f"'{where}' has {len(data) - end} unexpected bytes after its payloads")
    payload = memoryview(data)[HEADER_SIZE + mlen : end]
    if compact(manifest):
        digest_hex = manifest.get("payload_sha256")
        if not _is_digest(digest_hex):
            raise FormatError(f"'{where}': a version-3 manifest needs payload_sha256")
        if hashlib.sha256(payload).hexdigest() != digest_hex:
            raise ChecksumError(
                f"'{where}': the payload does not match its checksum (corrupt or tampered)"
            )
    return manifest, payload


def compact(manifest: dict[str, Any]) -> bool:
    """The one rule of where digests live: version >= 3 has one for the whole payload area
    (``payload_sha256``), earlier versions one per section (``sha256``)."""
    version = manifest.get("format_version")
    return _is_int(version) and version >= COMPACT_FORMAT_VERSION


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64


def _check_digest(record: dict[str, Any], manifest_compact: bool) -> str | None:
    """None when ``record`` (a section or a graph) carries the digest its version needs."""
    if manifest_compact:
        return None if "sha256" not in record else "sha256 in a version-3 section"
    return None if _is_digest(record.get("sha256")) else "missing sha256"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} in the manifest")


def _known(value: Any, table: Any) -> bool:
    """``value`` is one of the names ``table`` holds (a string: a list or dict from a hostile
    manifest is not a name, and would not even hash)."""
    return isinstance(value, str) and value in table


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(
    manifest: dict[str, Any], max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> list[SymbolMap | None]:
    """Check every entry against its shape and the payload area BEFORE inflating anything.

    Returns each entry's symbol map (None for raw values). Raises FormatError on an
    inconsistent manifest and DecompressionBombError when the declared decoded sizes
    exceed ``max_decoded_bytes``.
    """
    tensors = manifest.get("tensors")
    if not isinstance(tensors, list):
        raise FormatError("manifest has no tensor list")
    validate_model_spec(manifest)
    payload_bytes = manifest["payload_bytes"]
    seen: dict[str, dict[str, Any]] = {}
    maps: list[SymbolMap | None] = []
    declared = 0
    for e in tensors:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise FormatError("manifest tensor entry without a name")
        name = e["name"]
        if name in seen:
            raise FormatError(f"tensor '{name}' appears twice in the manifest")
        seen[name] = e
        smap, raw_total = _validate_entry(e, payload_bytes, compact(manifest))
        maps.append(smap)
        declared += raw_total
    declared += _validate_graphs(manifest, seen)
    if declared > max_decoded_bytes:
        raise DecompressionBombError(
            f"the file declares {declared} decoded bytes, above the limit of {max_decoded_bytes} "
            "(pass a larger max_decoded_bytes if this file is trusted)"
        )
    return maps


MAX_CLASSES = 1 << 20
MAX_INPUT_DIM = 1 << 20


def validate_model_spec(manifest: dict[str, Any]) -> None:
    """The optional ``model`` record and ``class_names``: the types ``load`` relies on."""

    def bad(msg: str) -> FormatError:
        return FormatError(f"manifest 'model' record: {msg}")

    spec = manifest.get("model")
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise bad(f"expected a mapping, got {type(spec).__name__}")
    if spec.get("name") is not None and not isinstance(spec["name"], str):
        raise bad(f"name must be a string, got {spec['name']!r}")
    nc = spec.get("num_classes")
    if nc is not None and not (_is_int(nc) and 1 <= nc <= MAX_CLASSES):
        raise bad(f"num_classes must be an integer in 1..{MAX_CLASSES}, got {nc!r}")
    shape = spec.get("input_shape")
    if shape is not None and not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 8
        and all(_is_int(d) and 1 <= d <= MAX_INPUT_DIM for d in shape)
    ):
        raise bad(f"input_shape must be a list of 1..8 positive integers, got {shape!r}")
    args = spec.get("model_args")
    if args is not None and not (
        isinstance(args, dict)
        and all(isinstance(k, str) and k.isidentifier() for k in args)
        and all(v is None or isinstance(v, (bool, int, float, str)) for v in args.values())
    ):
        raise bad("model_args must map option names to numbers, strings or booleans")
    names = manifest.get("class_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) and len(n) <= 256 for n in names)
    ):
        raise FormatError("manifest class_names must be a list of strings")


def _validate_entry(
    e: dict[str, Any], payload_bytes: int, manifest_compact: bool = False
) -> tuple[SymbolMap | None, int]:
    name = e["name"]

    def bad(msg: str) -> FormatError:
        return FormatError(f"manifest disagrees with its payloads: tensor '{name}': {msg}")

    shape = e.get("shape")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise bad(f"invalid shape {shape!r}")
    if len(shape) > 16:
        raise bad(f"shape {shape!r} has more than 16 dimensions")
    n = numel(shape)
    if n > MAX_ELEMENTS or any(d > MAX_ELEMENTS for d in shape):
        raise bad(f"shape {shape!r} declares more than {MAX_ELEMENTS} elements")
    if not _known(e.get("dtype"), ITEMSIZE):
        raise bad(f"unsupported dtype {e.get('dtype')!r}")
    if not _known(e.get("layout"), ROLES):
        raise bad(f"unknown layout {e.get('layout')!r}")
    nnz = e.get("nnz")
    if not _is_int(nnz) or not 0 <= nnz <= n:
        raise bad(f"nnz {nnz!r} is not within 0..{n}")
    smap = None
    count = value_count(e)
    if e.get("encoding") == "codes":
        if not _known(e.get("kind"), CODE_KINDS):
            raise bad(f"kind {e.get('kind')!r} has no integer codes")
        bits = e.get("bits")
        if not _is_int(bits) or not 1 <= bits <= 16:
            raise bad(f"bits {bits!r} not in 1..16")
        if not (_is_num(e.get("scale")) and _is_num(e.get("threshold"))):
            raise bad("scale/threshold missing or not finite")
        scale, threshold = float(e["scale"]), float(e["threshold"])
        top = code_limit(e["kind"], bits) or (1 << 16)
        if scale < 0 or threshold < 0 or threshold > FLOAT32_MAX or scale * top > FLOAT32_MAX:
            raise bad(
                f"scale {scale!r} / threshold {threshold!r} are not float32 magnitudes >= 0 "
                "whose largest code stays finite"
            )
        try:
            smap = parse_symbol_map(e.get("symbols"), e["kind"], bits)
        except FormatError as exc:
            raise bad(str(exc)) from None
        if (e["layout"] == "dense") != (smap.map == "zero_sign_magnitude") and e["kind"] == "exact":
            raise bad("exact codes use zero_sign_magnitude in the dense layout only")
        values_size = bitpack.packed_size(count, smap.width)
        values_dtype = "symbols"
    elif e.get("encoding") == "values":
        if not _known(e.get("storage_dtype"), ITEMSIZE):
            raise bad(f"unsupported storage dtype {e.get('storage_dtype')!r}")
        if not storage_allowed(e["dtype"], e["storage_dtype"]):
            raise bad(
                f"{e['dtype']} values stored as {e['storage_dtype']}: a values entry stores its "
                "own dtype, or float16/bfloat16 for a float dtype"
            )
        values_size = count * ITEMSIZE[e["storage_dtype"]]
        values_dtype = "bytes"
    else:
        raise bad(f"unknown encoding {e.get('encoding')!r}")
    sections = e.get("sections")
    if not isinstance(sections, list) or [
        s.get("role") if isinstance(s, dict) else None for s in sections
    ] != list(ROLES[e["layout"]]):
        raise bad(f"sections must be {list(ROLES[e['layout']])} for layout {e['layout']}")
    expected = layouts.structure_sizes(e["layout"], tuple(shape), nnz)
    total = 0
    for s in sections:
        role = s["role"]
        for key in ("offset", "length", "raw_length"):
            if not _is_int(s.get(key)) or s[key] < 0:
                raise bad(f"section {role}: invalid {key} {s.get(key)!r}")
        if s["offset"] + s["length"] > payload_bytes:
            raise bad(f"section {role} lies beyond the payload area")
        if not _known(s.get("codec"), entropy.CODECS):
            raise bad(f"section {role}: unknown codec {s.get('codec')!r}")
        problem = _check_digest(s, manifest_compact)
        if problem:
            raise bad(f"section {role}: {problem}")
        if role == "values":
            if s.get("dtype") != values_dtype:
                raise bad(f"values section dtype {s.get('dtype')!r}, expected {values_dtype!r}")
            want = values_size
        elif role == "mask":
            want = expected["mask"]
        else:
            dt = s.get("dtype")
            if not _known(dt, layouts.INDEX_DTYPES):
                raise bad(f"section {role}: index dtype {dt!r} is not an unsigned integer type")
            want = expected[role] * layouts.INDEX_DTYPES[dt].itemsize
        if s["raw_length"] != want:
            raise bad(
                f"section {role} declares {s['raw_length']} decoded bytes, but shape "
                f"{shape} with nnz={nnz} implies {want}"
            )
        total += want
    return smap, total


def _validate_graphs(manifest: dict[str, Any], tensors: dict[str, dict[str, Any]]) -> int:
    """Check the optional ``graphs`` list (format version 2); return its declared raw bytes."""
    graphs = manifest.get("graphs")
    if graphs is None:
        return 0
    if manifest["format_version"] < GRAPHS_FORMAT_VERSION:
        raise FormatError(
            f"manifest of format version {manifest['format_version']} has a 'graphs' list "
            f"(embedded graphs need version {GRAPHS_FORMAT_VERSION})"
        )
    if not isinstance(graphs, list):
        raise FormatError("manifest 'graphs' is not a list")
    total, names = 0, set()
    for g in graphs:
        if not isinstance(g, dict) or not _known(g.get("name"), GRAPH_NAMES) or g["name"] in names:
            raise FormatError(
                f"embedded graph {g.get('name') if isinstance(g, dict) else g!r}: the name must "
                f"be one of {', '.join(GRAPH_NAMES)}, each at most once"
            )
        name = g["name"]
        names.add(name)

        def bad(msg: str, name: str = name) -> FormatError:
            return FormatError(f"manifest disagrees with its payloads: graph '{name}': {msg}")

        if g.get("format") != "onnx":
            raise bad(f"unknown graph format {g.get('format')!r} (expected 'onnx')")
        for key in ("offset", "length", "raw_length"):
            if not _is_int(g.get(key)) or g[key] < 0:
                raise bad(f"invalid {key} {g.get(key)!r}")
        if g["offset"] + g["length"] > manifest["payload_bytes"]:
            raise bad("its section lies beyond the payload area")
        if not _known(g.get("codec"), entropy.CODECS):
            raise bad(f"unknown codec {g.get('codec')!r}")
        problem = _check_digest(g, compact(manifest))
        if problem:
            raise bad(problem)
        if not isinstance(g.get("input_name"), str) or not isinstance(g.get("output_name"), str):
            raise bad("input_name/output_name missing")
        inits = g.get("initializers")
        if not isinstance(inits, list):
            raise bad("no initializers list")
        for i in inits:
            if not isinstance(i, dict) or not isinstance(i.get("name"), str):
                raise bad("an initializer record without a name")
            if not isinstance(i.get("tensor"), str):
                raise bad(f"initializer '{i['name']}': 'tensor' must name a tensor")
            entry = tensors.get(i["tensor"])
            if entry is None:
                raise bad(f"initializer '{i['name']}' names unknown tensor {i.get('tensor')!r}")
            if not _known(i.get("source"), GRAPH_INIT_SOURCES) or not isinstance(
                i.get("transpose"), bool
            ):
                raise bad(f"initializer '{i['name']}': bad source/transpose")
            if i["transpose"] and len(entry["shape"]) != 2:
                raise bad(f"initializer '{i['name']}': only 2-D tensors can be transposed")
            if i["source"] == "values-gates" and (
                i.get("gates") not in GATE_ORDERS
                or len(entry["shape"]) != 2
                or entry["shape"][0] % len(i["gates"])
                or i["transpose"]
            ):
                raise bad(
                    f"initializer '{i['name']}': 'gates' must be one of {list(GATE_ORDERS)} "
                    "over a 2-D tensor whose rows split into that many blocks"
                )
            if i["source"] == "codes" and not entry_runs_on_int8(entry):
                raise bad(
                    f"initializer '{i['name']}' takes int8 codes from tensor '{i['tensor']}', "
                    "which is not stored as uniform/quantize codes of <= 8 bits"
                )
        total += g["raw_length"]
    return total


def check_payload(where: str, name: str, section: dict[str, Any], data: memoryview) -> bytes:
    """The section's stored bytes after checking their SHA-256 (a version-3 section has none:
    ``split_file`` checked the whole payload area, and ``validate`` that it has none)."""
    chunk = bytes(data[section["offset"] : section["offset"] + section["length"]])
    if "sha256" in section and hashlib.sha256(chunk).hexdigest() != section["sha256"]:
        what = section.get("role", "graph")
        raise ChecksumError(
            f"'{where}': payload '{what}' of {name} does not match its checksum "
            "(corrupt or tampered)"
        )
    return chunk
