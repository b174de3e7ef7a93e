"""JSON tensors without a Python object per number.

``{"inputs": [[...], ...]}`` holding only numbers is read by byte-level passes (C speed, no
Python object per value): the shape comes from the brackets alone and is checked to be
rectangular before any number is parsed, the count of values is bounded by the commas before
anything is allocated, and the numbers are parsed by numpy in one call. Memory is a small
multiple of the body plus the array itself. Any other JSON (strings, nulls, objects, other
keys) goes to ``json.loads`` only when the body is small (``GENERIC_MAX_BYTES``), so a large
body can never become millions of Python objects.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from pqcompress.serve.errors import RequestError

GENERIC_MAX_BYTES = 64 * 1024  # JSON that is not a plain numeric 'inputs' array: json.loads
GENERIC_COST_PER_BYTE = 64  # json.loads + np.asarray: Python objects per byte of JSON, bound
FAST_COST_PER_BYTE = 3  # the byte passes: copies of the body alive at once, at most
COST_PER_VALUE = 16  # the float64 array while numpy grows it, then its float32 copy
MAX_DEPTH = 16

_WS = b" \t\r\n"
_NUM = b"0123456789+-.eE"
_STRUCT = b"[],"
_HEAD = re.compile(rb'\s*\{\s*"inputs"\s*:\s*(?=\[)')
_TAIL = re.compile(rb"\]\s*\}\s*\Z")
_SPLIT = re.compile(rb"[0-9.eE+-]\s+[0-9.eE+-]")  # '1 2': a number cut by whitespace
_KEY = b'{"inputs":'
_TO_SPACE = bytes.maketrans(b'[]{}":inputs', b" " * 12)  # all but the numbers and commas
_TO_ZERO = bytes.maketrans(_NUM, b"0" * len(_NUM))


def numeric_inputs(body: bytes, max_values: int) -> np.ndarray | None:
    """The float64 array of a ``{"inputs": <numbers>}`` body, or None when the body is not of
    that form (the caller decides on the generic path). RequestError (422) for a ragged array,
    more than ``max_values`` values, or numbers that do not parse. At most three body-sized
    byte strings are alive at once (:data:`FAST_COST_PER_BYTE`), besides the array."""
    if _HEAD.match(body) is None or _TAIL.search(body) is None:
        return None
    if _SPLIT.search(body):
        raise RequestError(
            400, "bad_json", "the body is not valid JSON (numbers must be separated by commas)"
        )
    compact = body.translate(None, _WS)  # b'{"inputs":[...]}'
    if compact.translate(None, _NUM + _STRUCT) != _KEY + b"}":
        return None  # strings, literals, objects, other keys: not a plain numeric array
    start, end = len(_KEY), len(compact) - 1  # compact[start:end] is the array
    values = compact.count(b",", start, end) + 1
    if values > max_values:
        raise RequestError(
            422,
            "too_many_inputs",
            f"'inputs' holds about {values} values; a request may hold at most {max_values} "
            "(max_batch inputs of the model's shape)",
        )
    shape = rectangular_shape(_one_zero_per_number(compact)[start:-1])
    count = int(np.prod(shape))
    if count == 0:
        return np.zeros(shape, dtype=np.float64)
    text = compact.translate(_TO_SPACE)
    del compact
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a bad number ends the parse early: counted below
        try:
            out = np.fromstring(text, dtype=np.float64, sep=",")
        except ValueError:  # numpy 2: a number that does not parse
            out = np.zeros(0)
    if out.size != count:
        raise RequestError(
            400,
            "bad_json",
            f"'inputs' holds {count} places but not {count} valid JSON numbers",
        )
    return out.reshape(shape)


def _one_zero_per_number(compact: bytes) -> bytes:
    """Brackets and commas kept, each number written as one ``0`` (byte passes only: no
    Python object per number; a run of k characters takes about log2(k) passes)."""
    out = compact.translate(_TO_ZERO)
    while b"00" in out:
        out = out.replace(b"0000", b"0").replace(b"00", b"0")
    return out


def rectangular_shape(structure: bytes) -> tuple[int, ...]:
    """The shape of a nested array from its structure, each value written ``0``
    (``b"[[0,0],[0,0]]"`` -> (2, 2)); RequestError 422 when it is not one rectangular array."""
    depth = len(structure) - len(structure.lstrip(b"["))
    if depth == 0 or depth > MAX_DEPTH:
        raise RequestError(
            422, "bad_tensor", f"'inputs' nests {depth} levels; expected 1..{MAX_DEPTH}"
        )
    sizes: list[int] = []
    inner_len = 0
    for level in range(depth, 0, -1):  # innermost first
        closing = b"]" * (depth - level + 1)
        end = structure.find(closing, level - 1)
        if end < 0:
            raise _ragged()
        span = end + len(closing) - (level - 1)
        if level == depth:
            n = 0 if span == 2 else structure.count(b",", level - 1, end) + 1
        elif span == 2:
            n = 0
        else:
            n, rest = divmod(span - 1, inner_len + 1)
            if rest:
                raise _ragged()
        sizes.append(n)
        inner_len = span
    shape = tuple(reversed(sizes))
    if _canonical(shape) != structure:
        raise _ragged()
    return shape


def _canonical(shape: tuple[int, ...]) -> bytes:
    """The structure of a rectangular array of ``shape`` (repetition, not ``join``: join
    allocates a buffer record per item)."""
    group = b"0"
    for n in reversed(shape):
        group = b"[" + ((group + b",") * (n - 1) + group if n else b"") + b"]"
    return group


def _ragged() -> RequestError:
    return RequestError(
        422, "bad_tensor", "'inputs' is not a rectangular array of numbers (ragged or malformed)"
    )
