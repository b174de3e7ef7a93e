"""A restricted unpickler for dataset pickles (CIFAR batches): numpy arrays and plain data only."""

from __future__ import annotations

import _codecs
import io
import pickle
from typing import IO, Any

import numpy as np

from pqcompress.errors import DataError

try:  # NumPy >= 2 moved the implementation to numpy._core; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer
_ALLOWED[("_codecs", "encode")] = _codecs.encode  # how protocol 2 stores bytes


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals needed to rebuild numpy arrays; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only numpy arrays may be loaded)"
            ) from None


def load_numpy_pickle(source: bytes | IO[bytes], where: str) -> Any:
    """Unpickle ``source`` (latin-1/bytes keys as in the CIFAR python release) safely.

    Raises DataError naming ``where`` when the pickle is malformed or asks for any global
    other than the numpy array reconstruction functions.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        return NumpyOnlyUnpickler(stream, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"refusing to load {where}: {exc}") from None
    except Exception as exc:  # malformed pickles raise many types (EOFError, ValueError, ...)
        raise DataError(f"{where} is not a readable pickle: {type(exc).__name__}: {exc}") from None
