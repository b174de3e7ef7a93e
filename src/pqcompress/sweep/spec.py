"""Sweep spec: a base experiment plus grid axes and extra points, expanded into validated configs."""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pqcompress.config import (
    ExperimentConfig,
    from_dict,
    non_default_dict,
    set_dotted,
    to_dict,
)
from pqcompress.errors import ConfigError
from pqcompress.paths import check_component

# Short axis names -> dotted ExperimentConfig paths. Any dotted path is accepted as well.
AXIS_ALIASES: dict[str, str] = {
    "alpha": "compression.alpha",
    "bits": "compression.bits",
    "form": "compression.form",
    "rounding": "compression.rounding",
    "update": "compression.update",
    "mode": "compression.mode",
    "schedule": "compression.schedule",
    "mask": "compression.mask",
    "target_density": "compression.target_density",
    "target_flops": "compression.target_flops",
    "granularity": "compression.granularity",
    "allocation": "compression.allocation",
    "solve_min_share": "compression.solve_min_share",
    "ramp_steps": "compression.ramp_steps",
    "ramp_epochs": "train.ramp_epochs",
    "lr": "train.lr",
    "seed": "train.seed",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "optimizer": "train.optimizer",
}
_TOP_KEYS = tuple(f.name for f in fields(ExperimentConfig) if f.name != "version")
_SPEC_KEYS = ("name", "grid", "include", "export")
RUN_ID_LENGTH = 12


@dataclass(frozen=True)
class ExportSettings:
    """How a sweep exports every point's best epoch (``export:`` of a sweep file), so its
    files, sizes and ratios are those of what the runs will ship.

    ``onnx``: the graphs embedded beside the codes (``auto``, the default: the float32 graph,
    plus the int8 one where every compressed tensor allows it, for ``pqcompress serve`` and
    ONNX Runtime; ``none``: a torch-only file; ``float32``; ``all``). ``float_dtype``: the
    tensors stored as values rather than codes (BatchNorm, biases, uncompressed layers) in
    ``float32`` (bit-exact) or ``float16`` (half the bytes, lossy: the file is then evaluated
    on the test split and its own accuracy recorded and reported). ``pqcompress sweep --onnx
    --float16`` override the file's settings."""

    onnx: Literal["auto", "none", "float32", "all"] = "auto"
    float_dtype: Literal["float32", "float16"] = "float32"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``codec.export_run``."""
        return {"onnx": self.onnx, "float_dtype": self.float_dtype}

    def file_name(self) -> str:
        """The file in each run directory: ``model.pqz`` with the defaults, else one named
        after the settings (``model-onnx-none-float16.pqz``), so a second sweep over the same
        run directories (``--runs-dir``) with other settings writes its own files beside."""
        if self == ExportSettings():
            return "model.pqz"
        return f"model-onnx-{self.onnx}-{self.float_dtype}.pqz"


@dataclass(frozen=True)
class _SpecKeys:
    """A sweep file's own keys (the rest is the base experiment)."""

    name: str | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    include: tuple[dict[str, Any], ...] = ()
    export: ExportSettings = field(default_factory=ExportSettings)


@dataclass(frozen=True)
class SweepPoint:
    """One expanded point: its position, its axis values, its full config and its run id."""

    index: int
    params: dict[str, Any]
    config: ExperimentConfig
    run_id: str

    @property
    def label(self) -> str:
        """Short human label, e.g. ``alpha=0.5 bits=4``."""
        return " ".join(f"{k}={_fmt(v)}" for k, v in self.params.items()) or "(base)"


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: the ``base`` experiment, ``grid`` axes, ``include`` points and how every
    point is exported (``export``: :class:`ExportSettings`).

    ``grid`` maps an axis (a short name from ``AXIS_ALIASES`` or any dotted config path such
    as ``train.momentum``) to its list of values; the points are the cartesian product in axis
    order, followed by the ``include`` points (mappings axis -> value applied to the base).
    Points with identical full configs are collapsed into the first. In a sweep file the base
    experiment's keys (those of a recipe) sit at the top level beside ``name``, ``grid`` and
    ``include``.
    """

    name: str | None = None
    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    include: tuple[dict[str, Any], ...] = ()
    export: ExportSettings = field(default_factory=ExportSettings)

    def __post_init__(self) -> None:
        for axis, values in self.grid.items():
            _check_axis(axis, "grid")
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(
                    f"grid axis '{axis}' must be a non-empty list of values, got {values!r}"
                )
        for i, extra in enumerate(self.include):
            for axis in extra:
                _check_axis(axis, f"include[{i}]")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_name: str = "sweep") -> SweepSpec:
        """Strictly build a spec from a sweep file's mapping (unknown keys are errors, every
        one named); ``name`` defaults to ``default_name``. The base experiment is read by
        ``ExperimentConfig.from_dict``, as a recipe is."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a sweep must be a mapping, got {type(data).__name__}")
        accepted = sorted({*_SPEC_KEYS, *(f.name for f in fields(ExperimentConfig))})
        unknown = [k for k in data if k not in accepted]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), accepted, n=1)
                hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            what = (
                f"unknown key {hints[0]}"
                if len(hints) == 1
                else (f"{len(hints)} unknown keys: {'; '.join(hints)}")
            )
            raise ConfigError(f"{what}; a sweep accepts {', '.join(accepted)}")
        own = from_dict(_SpecKeys, {k: data[k] for k in _SPEC_KEYS if k in data})
        check_component(str(own.name or default_name), "sweep name")  # the runs' directory
        base = ExperimentConfig.from_dict({k: v for k, v in data.items() if k not in _SPEC_KEYS})
        return cls(
            name=own.name or default_name,
            base=base,
            grid=own.grid,
            include=own.include,
            export=own.export,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> SweepSpec:
        """Read a sweep YAML file; the sweep name defaults to the file stem."""
        from pqcompress.yamlio import read_yaml_file

        p = Path(path)
        data = read_yaml_file(p, "sweep file")
        if not isinstance(data, Mapping):
            raise ConfigError(f"sweep file '{p}' must hold a mapping, got {type(data).__name__}")
        return cls.from_dict(data, default_name=p.stem)

    def to_dict(self) -> dict[str, Any]:
        """The sweep file's mapping: name, the base experiment's keys, grid, include (and
        export, when it is not the default)."""
        out = {
            "name": self.name,
            **self.base.to_dict(),
            "grid": to_dict(self.grid),
            "include": to_dict(self.include),
        }
        if self.export != ExportSettings():
            out["export"] = to_dict(self.export)
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ---------------------------------------------------------------- expansion

    def points(self) -> list[SweepPoint]:
        """Every point, validated: the grid's cartesian product in axis order, then ``include``.
        Without a grid the base experiment is one point, unless there are ``include`` points:
        then those are the sweep, exactly.

        Raises ConfigError naming the axis, the value and the point when a value is rejected.
        """
        base = self.base.to_dict()
        for axis, values in self.grid.items():  # name the axis of a bad value precisely
            for value in values:
                _build(base, {axis: value}, f"grid axis '{axis}' value {value!r}")
        raw: list[dict[str, Any]] = []
        axes = list(self.grid)
        if axes or not self.include:  # an include-only sweep runs exactly its points
            for combo in itertools.product(*(self.grid[a] for a in axes)):
                raw.append(dict(zip(axes, combo, strict=True)))
        raw.extend(dict(extra) for extra in self.include)
        points: list[SweepPoint] = []
        seen: set[str] = set()
        for i, params in enumerate(raw):
            where = f"point {i} ({_label(params)})"
            if i >= len(raw) - len(self.include):
                where = f"include[{i - (len(raw) - len(self.include))}] ({_label(params)})"
            config = _build(base, params, where)
            rid = run_id(config)
            if rid in seen:
                continue
            seen.add(rid)
            points.append(SweepPoint(len(points), params, config, rid))
        return points


def run_id(config: ExperimentConfig) -> str:
    """Stable short id of a run: the first 12 hex digits of SHA-256 of the canonical JSON of
    its config without default-valued fields (``config.non_default_dict``), so a config field
    added in a later version does not change the ids of existing points."""
    text = json.dumps(
        non_default_dict(config), sort_keys=True, separators=(",", ":"), allow_nan=True
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]


def axis_path(axis: str) -> str:
    """The dotted config path of an axis name."""
    return AXIS_ALIASES.get(axis, axis)


# ---------------------------------------------------------------- internals


def _check_axis(axis: Any, where: str) -> None:
    if not isinstance(axis, str) or not axis:
        raise ConfigError(f"{where}: axis names must be strings, got {axis!r}")
    head = axis_path(axis).split(".")[0]
    if head not in _TOP_KEYS:
        names = sorted(set(AXIS_ALIASES) | set(_TOP_KEYS))
        close = difflib.get_close_matches(axis, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where}: unknown axis '{axis}'{hint}; use one of {', '.join(sorted(AXIS_ALIASES))} "
            f"or a dotted config path such as 'train.momentum' (sections: {', '.join(_TOP_KEYS)})"
        )


def _build(base: dict[str, Any], params: Mapping[str, Any], where: str) -> ExperimentConfig:
    data = copy.deepcopy(base)
    try:
        for axis, value in params.items():
            set_dotted(data, axis_path(axis), copy.deepcopy(value))
        return ExperimentConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"sweep {where}: {exc}") from None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _label(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "base"
