"""Request bodies of /v1/predict: size-limited reading and parsing of multipart, raw images,
JSON and .npy, each refused from what it declares before anything is allocated."""

from __future__ import annotations

import asyncio
import json
import time
import tokenize
from typing import Any

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from pqcompress.inputspec import check_arrays
from pqcompress.serve import jsonarray
from pqcompress.serve.budget import Reservation
from pqcompress.serve.errors import RequestError
from pqcompress.serve.preprocess import IMAGE_TYPES, check_batch
from pqcompress.serve.runtime import ServedModel
from pqcompress.serve.settings import ServeSettings

NPY_TYPES = ("application/x-npy", "application/octet-stream")
NPZ_TYPES = ("application/x-npz", "application/zip")
ACCEPTED = (*IMAGE_TYPES, "multipart/form-data", "application/json", *NPY_TYPES, *NPZ_TYPES)
NAMED_JSON_MAX_BYTES = 2 * 1024 * 1024  # named inputs as JSON (json.loads); .npz beyond
NPY_HEADER_MAX = 10_000
ZIP_MAGIC = b"PK\x03\x04"


async def read_body(request: Request, settings: ServeSettings, reservation: Reservation) -> bytes:
    """The request body, read as it streams in with every byte reserved from the memory budget
    first. 413 as soon as it passes ``max_body_bytes`` (or declares more); 408 when it arrives
    too slowly (after ``body_timeout_s``, each ``min_body_rate`` bytes buy one more second), so a
    slow client never holds memory or a slot for long."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit():
        if int(declared) > limit:
            raise RequestError(
                413,
                "body_too_large",
                f"the body is {int(declared)} bytes; the limit is {limit} bytes",
            )
        reservation.add(int(declared), "the request body")  # all of it, before reading
    prepaid = reservation.held
    chunks: list[bytes] = []
    size = 0
    start = time.monotonic()
    while True:
        left = start + settings.body_timeout_s + size / settings.min_body_rate - time.monotonic()
        try:
            message = await asyncio.wait_for(request.receive(), timeout=max(left, 0.0))
        except asyncio.TimeoutError:
            raise RequestError(
                408,
                "body_timeout",
                f"the body arrived too slowly ({size} bytes in {time.monotonic() - start:.1f} s); "
                f"send it within {settings.body_timeout_s:g} s plus 1 s per "
                f"{settings.min_body_rate} bytes",
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413, "body_too_large", f"the body is over the limit of {limit} bytes"
                )
            if size > prepaid:
                reservation.add(size - max(prepaid, size - len(chunk)), "the request body")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) > 1:  # joining holds the chunks and the body at once, for a moment
        reservation.add(size, "assembling the request body")
    body = b"".join(chunks)
    del chunks
    request._body = body  # starlette's form parser reads the cached body
    return body


async def _multipart_files(request: Request, body: bytes, max_batch: int) -> list[bytes]:
    if not body:
        raise RequestError(400, "empty", "the multipart body is empty: send field 'file'")
    try:
        form = await request.form(max_files=max_batch, max_fields=16)
    except StarletteHTTPException as exc:  # starlette turns multipart errors into 400
        if "too many files" in str(exc.detail).lower():
            raise RequestError(
                422, "too_many_inputs", f"more than {max_batch} files; at most {max_batch} accepted"
            ) from None
        raise RequestError(
            422, "bad_multipart", f"the multipart body is malformed: {exc.detail}"
        ) from None
    except (ValueError, KeyError, AssertionError) as exc:
        raise RequestError(
            422, "bad_multipart", f"the multipart body is malformed: {exc}"
        ) from None
    try:
        others = sorted({k for k in form if k != "file"})
        if others:
            raise RequestError(
                422, "unexpected_field", f"unexpected form fields {others}; send images as 'file'"
            )
        files = form.getlist("file")
        if not files:
            raise RequestError(400, "empty", "the multipart body has no 'file' field")
        check_batch(len(files), max_batch)
        out = []
        for i, f in enumerate(files):
            if isinstance(f, str):
                raise RequestError(
                    422, "not_an_image", f"field 'file' #{i} is text, not an uploaded image file"
                )
            out.append(await f.read())
        return out
    finally:
        await form.close()


def _batch_of_images(
    model: ServedModel, parts: list[bytes], reservation: Reservation
) -> np.ndarray:
    return np.stack(
        [
            model.preprocessing.image(p, f"field 'file' #{i}", reserve=reservation.add)
            for i, p in enumerate(parts)
        ]
    )


def _json_tensor(
    model: ServedModel, body: bytes, max_batch: int, reservation: Reservation
) -> np.ndarray:
    if not body.strip():
        raise RequestError(400, "empty", 'the JSON body is empty: send {"inputs": [...]}')
    max_values = max_batch * max(1, int(np.prod(model.preprocessing.input_shape)))
    values = body.count(b",") + 1  # a bound, counted without allocating
    if values > max_values and body.count(b'"') == 2:  # no strings: the commas are exact
        raise RequestError(
            422,
            "too_many_inputs",
            f"'inputs' holds {values} values; a request may hold at most {max_values} "
            "(max_batch inputs of the model's shape)",
        )
    values = min(values, max_values)
    reservation.add(
        jsonarray.FAST_COST_PER_BYTE * len(body) + jsonarray.COST_PER_VALUE * values,
        "decoding the JSON body",
    )
    arr = jsonarray.numeric_inputs(body, max_values)
    if arr is not None:
        return model.preprocessing.tensor(arr, max_batch)
    if len(body) > jsonarray.GENERIC_MAX_BYTES:
        raise RequestError(
            422,
            "bad_json",
            f"a JSON body over {jsonarray.GENERIC_MAX_BYTES} bytes must be exactly "
            '{"inputs": <a nested array of numbers>}; send .npy for anything else this large',
        )
    inputs = _json_inputs(body, reservation, '{"inputs": [...]} (a tensor)')
    if not isinstance(inputs, list):
        raise RequestError(422, "bad_tensor", "'inputs' must be a (nested) list of numbers")
    return model.preprocessing.tensor(inputs, max_batch)


def _json_inputs(body: bytes, reservation: Reservation, form: str) -> Any:
    """The ``inputs`` of a JSON body ``{"inputs": ...}`` read by ``json.loads`` (its memory
    reserved first); 400/422 naming ``form``, what the body must look like."""
    reservation.add(jsonarray.GENERIC_COST_PER_BYTE * len(body), "decoding the JSON body")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise RequestError(422, "bad_json", f"the JSON body must be an object {form}")
    extra = sorted(k for k in data if k != "inputs")
    if extra:
        raise RequestError(422, "bad_json", f"unexpected JSON keys {extra}; only 'inputs'")
    return data["inputs"]


def _npy_tensor(
    model: ServedModel, body: bytes, max_batch: int, reservation: Reservation
) -> np.ndarray:

    if not body:
        raise RequestError(400, "empty", "the .npy body is empty")
    count = _check_npy_header(body, max_batch)
    reservation.add(len(body) + 4 * count, "decoding the .npy body")  # the array, its float32
    return model.preprocessing.tensor(_load_npy(body), max_batch, what="the .npy array")


def named_inputs(
    model: ServedModel, media: str, body: bytes, settings: ServeSettings, reservation: Reservation
) -> dict[str, np.ndarray]:
    """The inputs of a model with named inputs, from JSON ``{"inputs": {name: nested list}}``
    (``{"inputs": [...]}`` for a model of one input), an ``.npz`` archive of one array per
    input, or one ``.npy`` array (one input); checked against the model's spec (names,
    dtypes, ranks, sizes, value bounds) and converted to each input's dtype. RequestError
    (4xx) naming what is wrong."""
    specs = model.inputs
    if media in NPZ_TYPES or (media in NPY_TYPES and body[:4] == ZIP_MAGIC):
        arrays = _npz_arrays(body, settings.max_batch, len(specs), reservation)
    elif media in NPY_TYPES:
        if len(specs) != 1:
            raise RequestError(
                415,
                "needs_named_inputs",
                f"this model takes {len(specs)} inputs {[s.name for s in specs]}; send them as "
                'an .npz archive (application/x-npz) or JSON {"inputs": {name: [...]}}',
            )
        if not body:
            raise RequestError(400, "empty", "the .npy body is empty")
        count = _check_npy_header(body, settings.max_batch)
        reservation.add(len(body) + 8 * count, "decoding the .npy body")
        arrays = {specs[0].name: _load_npy(body)}
    elif media == "application/json":
        arrays = _named_json(specs, body, reservation)
    else:
        raise RequestError(
            415,
            "needs_named_inputs",
            f"this model takes named inputs ({_spec_text(specs)}), not images; send JSON "
            '{"inputs": {name: [...]}} or an .npz archive (application/x-npz)',
        )
    try:
        return check_arrays(specs, arrays, max_batch=settings.max_batch, max_dim=settings.max_dim)
    except ValueError as exc:
        raise RequestError(422, "bad_input", str(exc)) from None


def _spec_text(specs: Any) -> str:
    return ", ".join(f"{s.name}: {s.dtype} {list(s.shape)}" for s in specs)


def _named_json(specs: Any, body: bytes, reservation: Reservation) -> dict[str, Any]:
    if not body.strip():
        raise RequestError(
            400, "empty", 'the JSON body is empty: send {"inputs": {"<input name>": [...], ...}}'
        )
    if len(body) > NAMED_JSON_MAX_BYTES:
        raise RequestError(
            413,
            "body_too_large",
            f"a JSON body of named inputs may hold at most {NAMED_JSON_MAX_BYTES} bytes; send "
            "an .npz archive (application/x-npz) for larger requests",
        )
    inputs = _json_inputs(
        body,
        reservation,
        f'{{"inputs": {{"<input name>": [...], ...}}}} (this model takes {_spec_text(specs)})',
    )
    if isinstance(inputs, list) and len(specs) == 1:
        return {specs[0].name: inputs}
    if not isinstance(inputs, dict):
        raise RequestError(
            422,
            "bad_json",
            "'inputs' must be an object mapping each input name to a nested list "
            f"({_spec_text(specs)})",
        )
    return inputs


def _load_npy(body: bytes) -> np.ndarray:
    import io

    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, tokenize.TokenError) as exc:
        raise RequestError(
            422, "bad_npy", f"the body is not a valid .npy array without pickles ({exc})"
        ) from None
    if not isinstance(arr, np.ndarray):
        raise RequestError(422, "bad_npy", "send one .npy array, not an .npz archive")
    return arr


def _npz_arrays(
    body: bytes, max_batch: int, expected: int, reservation: Reservation
) -> dict[str, np.ndarray]:
    """The arrays of an .npz body, each member's declared size and .npy header checked
    before it is decompressed or allocated."""
    import io
    import zipfile

    if not body:
        raise RequestError(400, "empty", "the .npz body is empty")
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise RequestError(
            422, "bad_npz", f"the body is not a valid .npz archive ({exc})"
        ) from None
    if not members or len(members) > expected:
        raise RequestError(
            422,
            "bad_npz",
            f"the .npz archive holds {len(members)} arrays; the model takes {expected} inputs",
        )
    declared = sum(m.file_size for m in members)
    limit = max(len(body) * 64, 1 << 20)  # deflate's best ratio is ~1000:1: bound it
    if declared > limit:
        raise RequestError(
            413,
            "body_too_large",
            f"the .npz archive expands to {declared} bytes; at most {limit} are accepted "
            "for this body size",
        )
    reservation.add(2 * declared, "decoding the .npz body")
    out: dict[str, np.ndarray] = {}
    try:
        for m in members:
            name = m.filename[:-4] if m.filename.endswith(".npy") else m.filename
            with zf.open(m) as fh:
                data = fh.read(m.file_size + 1)
            if len(data) != m.file_size:
                raise RequestError(
                    422, "bad_npz", f"member '{m.filename}' is not its declared size"
                )
            try:
                _check_npy_header(data, max_batch)
            except RequestError as exc:
                raise RequestError(exc.status, exc.code, f"array '{name}': {exc.message}") from None
            out[name] = _load_npy(data)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise RequestError(
            422, "bad_npz", f"the body is not a valid .npz archive ({exc})"
        ) from None
    return out


def _check_npy_header(body: bytes, max_batch: int) -> int:
    """Refuse a .npy body from its header alone (shape, dtype, size against the bytes sent and
    the batch limit), before numpy allocates what the header declares; the element count."""
    import io

    fh = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(fh, max_header_size=NPY_HEADER_MAX)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, tokenize.TokenError) as exc:
        # numpy parses the header dict with ast/tokenize: a mangled one raises their errors
        raise RequestError(422, "bad_npy", f"the body is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise RequestError(422, "bad_npy", "object arrays (pickles) are not accepted")
    count = 1
    for d in shape:
        count *= int(d)
    if shape and int(shape[0]) > max_batch:
        raise RequestError(
            422, "too_many_inputs", f"the .npy array holds {shape[0]} inputs; at most {max_batch}"
        )
    declared = count * dtype.itemsize
    if declared != len(body) - fh.tell():
        raise RequestError(
            422,
            "bad_npy",
            f"the .npy header declares shape {tuple(shape)} of {dtype} ({declared} bytes), but "
            f"{len(body) - fh.tell()} data bytes were sent",
        )
    return count


def _predict_body() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            },
            "image/png": binary,
            "image/jpeg": binary,
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "inputs": {
                            "description": "one input: a sample or a batch as a nested list; "
                            "a model with named inputs (GET /v1/model: inputs): an object "
                            "mapping each input name to its nested list",
                            "oneOf": [
                                {"type": "array", "items": {}},
                                {"type": "object", "additionalProperties": {"type": "array"}},
                            ],
                        }
                    },
                    "required": ["inputs"],
                }
            },
            "application/x-npy": binary,
            "application/octet-stream": binary,
            "application/x-npz": binary,
        },
    }
