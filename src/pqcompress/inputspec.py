"""What a model takes: one or more named inputs, each with a dtype and a shape.

``InputSpec("input_ids", "int64", ("batch", "seq"))`` is one input; a string dimension is
dynamic (its name is shared: every input's ``"seq"`` must have the same size in one call),
an integer dimension is fixed. The first dimension is the batch axis. A list of specs is
the model's signature, in the order its ``forward`` takes them positionally; it travels in
a ``.pqz`` manifest, names the inputs of the exported ONNX graph, and is what the service
validates requests against. ``from_input_shape((3, 32, 32))`` is the one-float-input
shorthand (``input_shape=`` everywhere).

Torch-free (numpy only): the service and the codec read it without torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pqcompress.errors import ConfigError

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
DEFAULT_INPUT = "input"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_MAX_RANK = 8


@dataclass(frozen=True)
class InputSpec:
    """One named model input: ``dtype`` (see ``DTYPES``) and ``shape`` (batch axis first;
    ints are fixed sizes, strings name dynamic axes). ``low``/``high`` optionally bound the
    values (``high`` exclusive for integers, e.g. a vocabulary size for token ids), checked
    by the service before the model runs."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str, ...] = ("batch",)
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"input name {self.name!r} is not accepted; use letters, digits, '_', '.', '-' "
                "(starting with a letter or '_', at most 64 characters)"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(
                f"input '{self.name}': dtype {self.dtype!r} is not accepted; use one of "
                f"{', '.join(DTYPES)}"
            )
        if isinstance(self.shape, (str, bytes)) or not isinstance(self.shape, Sequence):
            raise ConfigError(
                f"input '{self.name}': shape must be a list of sizes and axis names, e.g. "
                f"['batch', 'seq'], got {self.shape!r}"
            )
        shape = tuple(self.shape)
        if not 1 <= len(shape) <= _MAX_RANK:
            raise ConfigError(
                f"input '{self.name}': shape {list(shape)} must have 1 to {_MAX_RANK} "
                "dimensions, the batch axis first"
            )
        for d in shape:
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 1) or (
                isinstance(d, str) and bool(_NAME.match(d))
            )
            if not ok:
                raise ConfigError(
                    f"input '{self.name}': dimension {d!r} of {list(shape)} is neither a size "
                    ">= 1 nor an axis name"
                )
        if not isinstance(shape[0], str):
            raise ConfigError(
                f"input '{self.name}': the first dimension of {list(shape)} is the batch axis "
                "and must be dynamic (a name such as 'batch')"
            )
        for key in ("low", "high"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ConfigError(f"input '{self.name}': {key} must be a number, got {v!r}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ConfigError(f"input '{self.name}': low {self.low} must be below high {self.high}")
        object.__setattr__(self, "shape", shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def sample_shape(self) -> tuple[int | str, ...]:
        """The shape without the batch axis."""
        return self.shape[1:]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        return out

    @classmethod
    def from_dict(cls, data: Any) -> InputSpec:
        if isinstance(data, InputSpec):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"an input spec must be an InputSpec or a mapping with name, dtype and shape; "
                f"got {type(data).__name__}"
            )
        unknown = sorted(set(data) - {"name", "dtype", "shape", "low", "high"})
        if unknown:
            raise ConfigError(
                f"input spec {data.get('name', '?')!r}: unknown keys {unknown}; accepted: "
                "name, dtype, shape, low, high"
            )
        if "name" not in data or "shape" not in data:
            raise ConfigError(
                f"input spec {dict(data)!r} needs 'name' and 'shape' (and usually 'dtype')"
            )
        return cls(
            data["name"],
            data.get("dtype", "float32"),
            tuple(data["shape"]) if isinstance(data["shape"], list) else data["shape"],
            data.get("low"),
            data.get("high"),
        )


def from_input_shape(input_shape: Sequence[int], name: str = DEFAULT_INPUT) -> InputSpec:
    """The one-float-input shorthand: ``input_shape`` is one sample's shape (no batch axis)."""
    return InputSpec(name, "float32", ("batch", *[int(d) for d in input_shape]))


def as_specs(inputs: Iterable[Any] | None) -> tuple[InputSpec, ...] | None:
    """``inputs`` (InputSpecs or their dicts) as a checked tuple: at least one, unique names,
    every shared axis name used consistently as the batch axis or not."""
    if inputs is None:
        return None
    if isinstance(inputs, (InputSpec, Mapping, str, bytes)):
        raise ConfigError("inputs= must be a list of InputSpec (one per model input)")
    specs = tuple(InputSpec.from_dict(s) for s in inputs)
    if not specs:
        raise ConfigError("inputs= is empty; name at least one model input")
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"inputs= names {dup} more than once; each input needs its own name")
    batch_axes = {s.shape[0] for s in specs}
    if len(batch_axes) > 1:
        raise ConfigError(
            f"inputs= disagree on the batch axis ({sorted(batch_axes)}); every input's first "
            "dimension must be the same batch axis"
        )
    (batch,) = batch_axes
    for s in specs:
        if batch in s.shape[1:]:
            raise ConfigError(
                f"input '{s.name}' uses the batch axis {batch!r} again in {list(s.shape)}"
            )
    return specs


def single_float_shape(specs: Sequence[InputSpec] | None) -> tuple[int, ...] | None:
    """One sample's shape when ``specs`` is one float input of fixed sample shape (the form
    ``input_shape=`` describes), else None."""
    if specs is None or len(specs) != 1:
        return None
    (s,) = specs
    if s.dtype != "float32" or not all(isinstance(d, int) for d in s.sample_shape):
        return None
    return tuple(int(d) for d in s.sample_shape)  # type: ignore[arg-type]


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype that carries ``dtype`` (bfloat16 travels as float32)."""
    return np.dtype("float32" if dtype == "bfloat16" else dtype)


def concrete_shape(spec: InputSpec, sizes: Mapping[str, int] | None, batch: int) -> list[int]:
    """``spec``'s shape with the batch axis ``batch`` and every other named axis from
    ``sizes`` (8 when not given)."""
    sizes = sizes or {}
    return [batch] + [d if isinstance(d, int) else int(sizes.get(d, 8)) for d in spec.shape[1:]]


def example_arrays(
    specs: Sequence[InputSpec], sizes: Mapping[str, int] | None = None, *, batch: int = 1
) -> dict[str, np.ndarray]:
    """Arrays of each input's shape (dynamic axes from ``sizes``, else 8; the batch axis
    ``batch``): zeros for floats, ones for integers and True for bools (a valid token id and
    an all-ones attention mask in most models), within ``low``/``high``."""
    out = {}
    for s in specs:
        shape = concrete_shape(s, sizes, batch)
        dtype = numpy_dtype(s.dtype)
        if s.dtype == "bool":
            arr = np.ones(shape, dtype=bool)
        elif s.is_float:
            fill = 0.0 if s.low is None or s.low <= 0 else s.low
            arr = np.full(shape, fill, dtype=dtype)
        else:
            fill = 1 if s.high is None or s.high > 1 else 0
            if s.low is not None and fill < s.low:
                fill = int(np.ceil(s.low))
            arr = np.full(shape, fill, dtype=dtype)
        out[s.name] = arr
    return out


def random_arrays(
    specs: Sequence[InputSpec],
    rng: np.random.Generator,
    sizes: Mapping[str, int] | None = None,
    *,
    batch: int = 1,
) -> dict[str, np.ndarray]:
    """Random arrays that satisfy ``specs`` (for load tests): floats ~ N(0, 1) clipped to
    ``low``/``high``, integers uniform in [low or 0, high or 100), bools True (masks)."""
    out = {}
    for s in specs:
        shape = concrete_shape(s, sizes, batch)
        dtype = numpy_dtype(s.dtype)
        if s.dtype == "bool":
            arr = np.ones(shape, dtype=bool)
        elif s.is_float:
            arr = rng.standard_normal(shape).astype(dtype)
            if s.low is not None or s.high is not None:
                arr = np.clip(arr, s.low, s.high).astype(dtype)
        else:
            low = int(np.ceil(s.low)) if s.low is not None else 0
            high = int(s.high) if s.high is not None else low + 100
            arr = rng.integers(low, max(high, low + 1), size=shape).astype(dtype)
        out[s.name] = arr
    return out


def check_arrays(
    specs: Sequence[InputSpec],
    arrays: Mapping[str, Any],
    *,
    max_batch: int,
    max_dim: int,
    what: str = "inputs",
) -> dict[str, np.ndarray]:
    """``arrays`` (name -> array-like) checked against ``specs`` and converted to each input's
    dtype: the same names, each input's rank, fixed sizes, one size per axis name across
    inputs, batch <= ``max_batch``, dynamic axes <= ``max_dim``, integer values within
    ``low``/``high`` and integral, floats finite. ValueError naming the first problem (the
    service turns it into a 422); the result holds new arrays in spec order."""
    names = [s.name for s in specs]
    missing = [n for n in names if n not in arrays]
    extra = sorted(str(k) for k in arrays if k not in names)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        raise ValueError(
            f"{what}: {' and '.join(parts)}; the model takes {names} "
            f"({', '.join(_describe(s) for s in specs)})"
        )
    axes: dict[str, tuple[int, str]] = {}
    out: dict[str, np.ndarray] = {}
    for s in specs:
        arr = arrays[s.name]
        if not isinstance(arr, np.ndarray):
            arr = _from_nested(arr, s)
        if arr.ndim != len(s.shape):
            raise ValueError(
                f"input '{s.name}' has {arr.ndim} dimensions {list(arr.shape)}; expected "
                f"{len(s.shape)}: {list(s.shape)}"
            )
        for i, (got, want) in enumerate(zip(arr.shape, s.shape)):
            if isinstance(want, int):
                if got != want:
                    raise ValueError(
                        f"input '{s.name}' has size {got} on axis {i}; expected {want} "
                        f"(shape {list(s.shape)})"
                    )
                continue
            limit = max_batch if i == 0 else max_dim
            if got < 1 or got > limit:
                kind = "inputs in a request" if i == 0 else f"positions on axis '{want}'"
                raise ValueError(f"input '{s.name}' has {got} {kind}; expected 1 to {limit}")
            if want in axes and axes[want][0] != got:
                raise ValueError(
                    f"axis '{want}' is {axes[want][0]} in input '{axes[want][1]}' but {got} in "
                    f"input '{s.name}'; inputs sharing an axis name must agree"
                )
            axes.setdefault(want, (int(got), s.name))
        out[s.name] = _convert(arr, s)
    return out


def _describe(s: InputSpec) -> str:
    return f"{s.name}: {s.dtype} {list(s.shape)}"


def _from_nested(value: Any, s: InputSpec) -> np.ndarray:
    if not isinstance(value, list):
        raise ValueError(
            f"input '{s.name}' must be a (nested) list of numbers of shape {list(s.shape)}"
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"input '{s.name}' must be a rectangular nested list of numbers of shape "
            f"{list(s.shape)} (ragged or non-numeric)"
        )
    return arr


def _convert(arr: np.ndarray, s: InputSpec) -> np.ndarray:
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"input '{s.name}' holds {arr.dtype} values; expected {s.dtype}")
    target = numpy_dtype(s.dtype)
    if s.dtype == "bool":
        if kind == "f" and not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"input '{s.name}' is a bool mask: values must be 0/1 or true/false")
        if kind in "iu" and not ((arr == 0) | (arr == 1)).all():
            raise ValueError(f"input '{s.name}' is a bool mask: values must be 0/1 or true/false")
        return arr.astype(bool)
    if s.is_float:
        out = arr.astype(target)
        if kind == "f" and not np.isfinite(out).all():
            raise ValueError(
                f"input '{s.name}' holds values that are not finite (or overflow {s.dtype})"
            )
        _bounds(out, s)
        return out
    # an integer input: whole numbers in the dtype's range (and low/high)
    if kind == "f" and (not np.isfinite(arr).all() or not (np.floor(arr) == arr).all()):
        raise ValueError(f"input '{s.name}' takes whole numbers ({s.dtype}); got fractions")
    info = np.iinfo(target)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"input '{s.name}' holds values outside the {s.dtype} range")
    out = arr.astype(target)
    _bounds(out, s)
    return out


def _bounds(arr: np.ndarray, s: InputSpec) -> None:
    if not arr.size:
        return
    low, high = arr.min(), arr.max()
    if s.low is not None and low < s.low:
        raise ValueError(f"input '{s.name}' holds {low}, below its lowest value {s.low:g}")
    if s.high is not None:
        over = high >= s.high if not s.is_float else high > s.high
        if over:
            bound = "below" if not s.is_float else "at most"
            raise ValueError(f"input '{s.name}' holds {high}; values must be {bound} {s.high:g}")
