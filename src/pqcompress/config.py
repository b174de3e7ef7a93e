"""Typed, frozen configuration objects with strict dict/YAML round trips."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pqcompress.errors import ConfigError

Form = Literal["exact", "literal", "uniform"]
Mode = Literal["pq", "prune", "quantize"]
Schedule = Literal["step", "epoch", "post"]
Rounding = Literal["floor", "ceil", "trunc", "nearest", "stochastic"]
Update = Literal["inplace", "latent"]
Targets = Literal["weights", "biases", "both"]
Mask = Literal["free", "sticky"]
Optimizer = Literal["sgd", "adam", "adamw"]
LRSchedule = Literal["none", "step", "cosine", "onecycle"]
TrainMetric = Literal["running", "full"]
BestOn = Literal["test", "val"]
Granularity = Literal["element", "channel"]
Amp = Literal["off", "bf16", "fp16", "auto"]
Allocation = Literal["std", "magnitude", "lamp"]

FULL_PRECISION_BITS = 32
MIN_BITS, MAX_BITS = 2, 16


def check_bits(bits: int, where: str = "bits") -> None:
    """Raise ConfigError unless ``bits`` is 2..16 or 32 (32 = no quantization)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ConfigError(f"{where} must be an integer, got {bits!r}")
    if not (MIN_BITS <= bits <= MAX_BITS or bits == FULL_PRECISION_BITS):
        raise ConfigError(
            f"{where}={bits} is not supported: use {MIN_BITS}..{MAX_BITS} bits, "
            f"or {FULL_PRECISION_BITS} for no quantization"
        )


def check_alpha(alpha: float, where: str = "alpha") -> None:
    """Raise ConfigError unless ``alpha`` is a finite number >= 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ConfigError(f"{where} must be a number, got {alpha!r}")
    if not (alpha >= 0.0) or alpha == float("inf"):
        raise ConfigError(f"{where}={alpha} is not allowed: alpha must be a finite number >= 0")


@dataclass(frozen=True)
class LayerOverride:
    """Per-layer settings: ``pattern`` is an fnmatch pattern on the module name."""

    pattern: str
    alpha: float | None = None
    bits: int | None = None
    skip: bool = False

    def __post_init__(self) -> None:
        if self.alpha is not None:
            check_alpha(self.alpha, f"overrides[{self.pattern!r}].alpha")
        if self.bits is not None:
            check_bits(self.bits, f"overrides[{self.pattern!r}].bits")


@dataclass(frozen=True)
class CompressionConfig:
    """What the compressor does, to which tensors, and when.

    Defaults are the settings that trained best in our measurements
    (see docs/compression.md): exact dead-zone P->Q after every step, rounding
    to nearest, float latent weights with a straight-through estimator.
    ``update="inplace"`` with ``rounding="floor"`` reproduces the studies.
    """

    alpha: float = 0.5
    bits: int = 8
    form: Form = "exact"
    mode: Mode = "pq"
    schedule: Schedule = "step"
    rounding: Rounding = "nearest"
    update: Update = "latent"
    targets: Targets = "weights"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layer_types: tuple[str, ...] = ("Linear", "Conv1d", "Conv2d", "Conv3d")
    parameters: tuple[str, ...] = ()
    overrides: tuple[LayerOverride, ...] = ()
    seed: int = 0
    backend: Literal["auto", "numba", "torch"] = "auto"
    mask: Mask = "free"
    ramp_steps: int = 0
    target_density: float | None = None
    solve_min_share: float = 0.0
    granularity: Granularity = "element"
    target_flops: float | None = None
    allocation: Allocation = "lamp"  # how target_density is spread (element granularity)
    version: int = 1

    def inert_fields(self) -> tuple[str, ...]:
        """Fields with no effect in this config (left out of the run-id form): ``allocation``
        spreads ``target_density`` over element-pruned layers and does nothing otherwise."""
        return (
            ()
            if self.target_density is not None and self.granularity == "element"
            else ("allocation",)
        )

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_bits(self.bits)
        _check_literal(
            self,
            "form",
            "mode",
            "schedule",
            "rounding",
            "update",
            "targets",
            "backend",
            "mask",
            "granularity",
            "allocation",
        )
        if self.granularity == "channel" and self.mode == "quantize":
            raise ConfigError(
                "granularity='channel' prunes whole channels: it needs mode='pq' or 'prune', "
                "not mode='quantize'"
            )
        if self.target_flops is not None:
            if self.granularity != "channel":
                raise ConfigError(
                    "target_flops needs granularity='channel' (removing elements saves no "
                    "multiply-accumulates on dense kernels); set granularity: channel"
                )
            if self.target_density is not None:
                raise ConfigError("set target_density or target_flops, not both")
            if not 0.0 < self.target_flops <= 1.0:
                raise ConfigError(
                    f"target_flops={self.target_flops} must be in (0, 1] (the share of the "
                    "dense model's conv/linear multiply-accumulates to keep, e.g. 0.5)"
                )
        if isinstance(self.ramp_steps, bool) or not isinstance(self.ramp_steps, int):
            raise ConfigError(f"ramp_steps must be an integer, got {self.ramp_steps!r}")
        if self.ramp_steps < 0:
            raise ConfigError(
                f"ramp_steps={self.ramp_steps} must be >= 0 (0 = full threshold from the start)"
            )
        if self.target_density is not None:
            if not 0.0 < self.target_density <= 1.0:
                raise ConfigError(
                    f"target_density={self.target_density} must be in (0, 1] "
                    "(the share of compressed weights to keep, e.g. 0.1)"
                )
            if self.mode == "quantize":
                raise ConfigError(
                    "target_density needs pruning: it is not accepted with mode='quantize'"
                )
        share = self.solve_min_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise ConfigError(
                f"solve_min_share={share!r} must be a number in [0, 1) (the least share of the "
                "selected weights a layer must hold to take the solved alpha; 0 = every layer)"
            )
        if share > 0 and self.target_density is None:
            raise ConfigError(
                f"solve_min_share={share} needs target_density (it chooses which layers the "
                "solved alpha thins); set compression.target_density or leave it at 0"
            )
        if not self.layer_types:
            raise ConfigError(
                "layer_types must name at least one module type, e.g. ['Linear', 'Conv2d']"
            )


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is split and augmented."""

    root: str | None = None
    val_fraction: float = 0.1
    augment: bool = True
    subset: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    cutout: int = 0  # side of the square Cutout zeroes in each training image (0 = off)
    # seed of the validation carve-out and of ``subset`` (None: the run's train.seed, or, when
    # it fine-tunes a run (init_from), that run's split, so its training images stay out)
    split_seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cutout, bool) or not isinstance(self.cutout, int) or self.cutout < 0:
            raise ConfigError(
                f"data.cutout={self.cutout!r} must be a whole number of pixels >= 0 (0 = off)"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={self.val_fraction} must be in [0, 1)")
        if self.subset is not None and self.subset <= 0:
            raise ConfigError(f"data.subset={self.subset} must be a positive number of samples")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: optimizer, schedule, budget, early stopping, seeds."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Optimizer = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: LRSchedule = "none"
    lr_step_size: int = 30
    lr_gamma: float = 0.1
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    ramp_epochs: float | None = None
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    train_metric: TrainMetric = "running"
    max_steps_per_epoch: int | None = None
    best_on: BestOn = "val"
    amp: Amp = "off"
    channels_last: bool = False  # 4-D weights in the channels_last memory layout

    def __post_init__(self) -> None:
        _check_literal(self, "optimizer", "lr_schedule", "train_metric", "best_on", "amp")
        for name in ("epochs", "batch_size", "lr_step_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"train.lr={self.lr} must be > 0")
        if not 0.0 < self.warmup_fraction < 1.0:
            raise ConfigError(
                f"train.warmup_fraction={self.warmup_fraction} must be in (0, 1) "
                "(the share of all steps that onecycle spends warming up)"
            )
        if self.ramp_epochs is not None and not self.ramp_epochs >= 0:
            raise ConfigError(
                f"train.ramp_epochs={self.ramp_epochs} must be >= 0 (sets compression.ramp_steps)"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1)")
        if self.patience < 0:
            raise ConfigError(
                f"train.patience={self.patience} must be >= 0 (0 = no early stopping)"
            )
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError("train.max_steps_per_epoch must be >= 1 or null")


def check_distill_settings(temperature: float, soft_weight: float, hard_weight: float) -> None:
    """ConfigError unless T > 0 and both weights are finite and >= 0, not both 0."""
    for name, value in (
        ("temperature", temperature),
        ("soft_weight", soft_weight),
        ("hard_weight", hard_weight),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
    if not 0 < temperature < float("inf"):
        raise ConfigError(f"temperature={temperature!r} must be a finite number > 0")
    for name, value in (("soft_weight", soft_weight), ("hard_weight", hard_weight)):
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{name}={value!r} must be a finite number >= 0")
    if soft_weight == 0 and hard_weight == 0:
        raise ConfigError("soft_weight and hard_weight are both 0: nothing to learn from")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation while training (docs/training.md): the loss becomes
    ``soft_weight * T^2 * KL(teacher_T || student_T) + hard_weight * CE`` (Hinton et al.
    2015), the teacher a trained run of the same dataset, run live on each augmented batch."""

    teacher: str  # a run directory (its config names the model) or a checkpoint of this model
    temperature: float = 4.0
    soft_weight: float = 0.9
    hard_weight: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, str) or not self.teacher.strip():
            raise ConfigError("distill.teacher must name a run directory or a checkpoint file")
        try:
            check_distill_settings(self.temperature, self.soft_weight, self.hard_weight)
        except ConfigError as exc:
            raise ConfigError(f"distill.{exc}") from None


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: model + dataset + training loop + optional compression."""

    model: str = "cnn5"
    dataset: str = "digits"
    model_args: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compression: CompressionConfig | None = None
    init_from: str | None = None
    version: int = 1
    distill: DistillConfig | None = None  # knowledge distillation from a trained teacher

    def __post_init__(self) -> None:
        if self.init_from is not None and not str(self.init_from).strip():
            raise ConfigError(
                "init_from must name a run directory or a checkpoint file, or be null"
            )
        if self.distill is not None and self.train.label_smoothing:
            raise ConfigError(
                f"train.label_smoothing={self.train.label_smoothing} with distill: the "
                "distillation loss's hard term is plain cross-entropy (the teacher's soft "
                "targets do the smoothing); set train.label_smoothing: 0"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_dict(self)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        return from_dict(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        return load_yaml(cls, path)

    def to_yaml(self, path: str | Path | None = None) -> str:
        return dump_yaml(self, path)


# ---------------------------------------------------------------- conversion

T = TypeVar("T")


def _check_literal(obj: Any, *names: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for name in names:
        allowed = get_args(hints[name])
        value = getattr(obj, name)
        if value not in allowed:
            raise ConfigError(
                f"{name}={value!r} is not accepted; expected one of {', '.join(map(repr, allowed))}"
            )


def to_dict(obj: Any) -> Any:
    """Plain-data (YAML/JSON-safe) form of a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


# Defaults changed after run ids were recorded: the id form keeps omitting the *former*
# default, so a stored run keeps its id and means what it meant, and a config that takes the
# new default gets an id of its own (it is a different run). (class name, field) -> former.
FORMER_DEFAULTS: dict[tuple[str, str], Any] = {
    ("CompressionConfig", "allocation"): "std",  # lamp since 2026-12-06 (docs/compression.md §6)
}


def non_default_dict(obj: Any) -> Any:
    """``to_dict`` without the fields that hold their default value (recursively), so that a
    field added later with a default leaves the form of every existing config unchanged
    (sweep run ids hash this form). A default that changed is compared in its former value
    (``FORMER_DEFAULTS``), and a field the config says has no effect (``inert_fields()``) is
    left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        inert = obj.inert_fields() if hasattr(obj, "inert_fields") else ()
        for f in dataclasses.fields(obj):
            if f.name in inert:
                continue
            value = getattr(obj, f.name)
            key = (type(obj).__name__, f.name)
            default: Any = dataclasses.MISSING
            if key in FORMER_DEFAULTS:
                default = FORMER_DEFAULTS[key]
            elif f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if default is not dataclasses.MISSING and value == default:
                continue
            out[f.name] = non_default_dict(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [non_default_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): non_default_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` from plain data; unknown or mistyped keys raise ConfigError naming the key."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = unknown_keys(cls, data, path)
    if len(unknown) > 1:  # every mistyped key of the recipe at once, not only the first
        raise ConfigError(f"{len(unknown)} unknown keys: {'; '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key '{where}'{hint}; accepted: {', '.join(sorted(names))}")
        kwargs[key] = _coerce(hints[key], value, where)
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init
        and f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{path or cls.__name__} needs {' and '.join(missing)}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path + ': ' if path else ''}{exc}") from None


def unknown_keys(cls: type, data: Any, path: str = "") -> list[str]:
    """Every key of ``data`` (nested sections included) that ``cls`` does not have, each as
    ``'dotted.key' (did you mean 'x'?)``."""
    if not isinstance(data, Mapping) or not dataclasses.is_dataclass(cls):
        return []
    hints = typing.get_type_hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls))
    out = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            out.append(f"'{where}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            continue
        inner = [
            a
            for a in (hints[key], *get_args(hints[key]))
            if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        if inner and isinstance(value, Mapping):
            out += unknown_keys(inner[0], value, where)
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"'{where}' has an invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"'{where}'={value!r} is not accepted; expected one of {', '.join(map(repr, args))}"
            )
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}")
        return value
    return value


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted="a.b"`` in a config dict, creating missing
    sections; ConfigError when a part on the way is a value, not a section."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file into ``cls`` with strict key checking."""
    from pqcompress.yamlio import read_yaml_file

    return from_dict(cls, read_yaml_file(path, "config file") or {})


def dump_yaml(obj: Any, path: str | Path | None = None) -> str:
    """YAML text of a config; written to ``path`` when given."""
    import yaml

    text = yaml.safe_dump(to_dict(obj), sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
