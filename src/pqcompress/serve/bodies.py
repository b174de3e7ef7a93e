"""Request bodies of /v1/predict: size-limited reading and parsing of multipart, raw images,
JSON and .npy, each refused from what it declares before anything is allocated."""

from __future__ import annotations

import json
import tokenize
from typing import Any

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from pqcompress.serve.errors import RequestError
from pqcompress.serve.preprocess import IMAGE_TYPES, check_batch
from pqcompress.serve.runtime import ServedModel

NPY_TYPES = ("application/x-npy", "application/octet-stream")
ACCEPTED = (*IMAGE_TYPES, "multipart/form-data", "application/json", *NPY_TYPES)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes (streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise RequestError(
            413, "body_too_large", f"the body is {int(declared)} bytes; the limit is {limit} bytes"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, "body_too_large", f"the body is over the limit of {limit} bytes"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
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


def _batch_of_images(model: ServedModel, parts: list[bytes]) -> np.ndarray:
    return np.stack(
        [model.preprocessing.image(p, f"field 'file' #{i}") for i, p in enumerate(parts)]
    )


def _json_tensor(model: ServedModel, body: bytes, max_batch: int) -> np.ndarray:
    if not body.strip():
        raise RequestError(400, "empty", 'the JSON body is empty: send {"inputs": [...]}')
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise RequestError(
            422, "bad_json", 'the JSON body must be an object {"inputs": [...]} (a tensor)'
        )
    extra = sorted(k for k in data if k != "inputs")
    if extra:
        raise RequestError(422, "bad_json", f"unexpected JSON keys {extra}; only 'inputs'")
    if not isinstance(data["inputs"], list):
        raise RequestError(422, "bad_tensor", "'inputs' must be a (nested) list of numbers")
    return model.preprocessing.tensor(data["inputs"], max_batch)


def _npy_tensor(model: ServedModel, body: bytes, max_batch: int) -> np.ndarray:
    import io

    if not body:
        raise RequestError(400, "empty", "the .npy body is empty")
    _check_npy_header(body, max_batch)
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, tokenize.TokenError) as exc:
        raise RequestError(
            422, "bad_npy", f"the body is not a valid .npy array without pickles ({exc})"
        ) from None
    if not isinstance(arr, np.ndarray):
        raise RequestError(422, "bad_npy", "send one .npy array, not an .npz archive")
    return model.preprocessing.tensor(arr, max_batch, what="the .npy array")


def _check_npy_header(body: bytes, max_batch: int) -> None:
    """Refuse a .npy body from its header alone (shape, dtype, size against the bytes sent and
    the batch limit), before numpy allocates what the header declares."""
    import io

    fh = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(fh, max_header_size=10_000)
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
                    "properties": {"inputs": {"type": "array", "items": {}}},
                    "required": ["inputs"],
                }
            },
            "application/x-npy": binary,
            "application/octet-stream": binary,
        },
    }
