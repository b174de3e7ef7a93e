"""Integer codes <-> unsigned fixed-width symbols, per compression kind (docs/format.md §5).

- ``offset``: ``symbol = code + offset``. Used by ``uniform``/``quantize`` (codes in -L..L,
  offset L, width b) and ``literal`` (offset = the largest |code| K, width = bits of 2K).
- ``sign_magnitude``: the ``exact`` form's nonzero codes ±1..±(L+1):
  ``symbol = (|code| - 1) | (code < 0) << (width - 1)``, width b (1 sign + b-1 magnitude bits).
- ``zero_sign_magnitude``: ``exact`` codes in the dense layout, where zeros must be
  representable: ``symbol = 0`` for code 0, else ``1 + sign_magnitude(code)``; width b + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pqcompress.codec.entries import max_level
from pqcompress.codec.errors import FormatError


@dataclass(frozen=True)
class SymbolMap:
    map: str
    width: int
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        out = {"map": self.map, "width": self.width}
        if self.map == "offset":
            out["offset"] = self.offset
        return out

    @property
    def max_symbol(self) -> int:
        """Largest symbol a valid writer can produce with this map."""
        if self.map == "offset":
            return 2 * self.offset
        if self.map == "zero_sign_magnitude":
            return 1 << (self.width - 1)
        return (1 << self.width) - 1

    def encode(self, codes: np.ndarray) -> np.ndarray:
        c = codes.astype(np.int64, copy=False)
        if self.map == "offset":
            return (c + self.offset).astype(np.uint64)
        if self.map == "sign_magnitude":
            return _sign_magnitude(c, self.width)
        sm = _sign_magnitude(c, self.width - 1) + np.uint64(1)
        return np.where(c == 0, np.uint64(0), sm)

    def decode(self, symbols: np.ndarray) -> np.ndarray:
        """Codes (int64) of ``symbols``."""
        s = symbols.astype(np.int64, copy=False)
        if self.map == "offset":
            return s - self.offset
        if self.map == "sign_magnitude":
            return _from_sign_magnitude(s, self.width)
        return np.where(s == 0, 0, _from_sign_magnitude(s - 1, self.width - 1))


def _sign_magnitude(c: np.ndarray, width: int) -> np.ndarray:
    mag = np.abs(c) - 1
    out: np.ndarray = (np.maximum(mag, 0) | ((c < 0).astype(np.int64) << (width - 1))).astype(
        np.uint64
    )
    return out


def _from_sign_magnitude(s: np.ndarray, width: int) -> np.ndarray:
    mag = (s & ((1 << (width - 1)) - 1)) + 1
    return np.where((s >> (width - 1)) & 1 == 1, -mag, mag)


def symbol_map(kind: str, bits: int, codes: np.ndarray, dense: bool) -> SymbolMap:
    """The map the writer uses for ``kind`` codes in a dense or a sparse layout."""
    if kind == "exact":
        return (
            SymbolMap("zero_sign_magnitude", bits + 1)
            if dense
            else SymbolMap("sign_magnitude", bits)
        )
    if kind in ("uniform", "quantize"):
        return SymbolMap("offset", bits, max_level(bits))
    if kind == "literal":
        top = int(np.abs(codes.astype(np.int64)).max()) if codes.size else 0
        return SymbolMap("offset", max(1, (2 * top).bit_length()), top)
    raise ValueError(f"kind {kind!r} has no integer codes")


def parse_symbol_map(data: object, kind: str, bits: int) -> SymbolMap:
    """Validate a manifest's symbol record against the tensor's kind and bits."""
    if not isinstance(data, dict):
        raise FormatError("symbols record must be an object")
    name, width, offset = data.get("map"), data.get("width"), data.get("offset", 0)
    if not isinstance(name, str):
        raise FormatError(f"symbols record {data!r} has no map name")
    if (
        isinstance(width, bool)
        or not isinstance(width, int)
        or isinstance(offset, bool)
        or not isinstance(offset, int)
        or not 1 <= width <= 32
    ):
        raise FormatError(f"symbols record {data!r} has a bad width or offset")
    expected = {
        "exact": {"sign_magnitude": bits, "zero_sign_magnitude": bits + 1},
        "uniform": {"offset": bits},
        "quantize": {"offset": bits},
    }.get(kind)
    if kind == "literal":
        if name != "offset" or offset < 0 or (2 * offset).bit_length() > width:
            raise FormatError(f"literal symbols record {data!r} is inconsistent")
    elif expected is None or expected.get(name) != width:
        raise FormatError(f"symbols record {data!r} does not fit kind {kind!r} at {bits} bits")
    elif name == "offset" and offset != max_level(bits):
        raise FormatError(f"symbols offset {offset} does not fit {bits} bits")
    return SymbolMap(name, width, offset if name == "offset" else 0)
