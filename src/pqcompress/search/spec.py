"""The search spec (``pqcompress search SPEC.yaml``): typed, strict, with the issue's keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pqcompress.config import from_dict, to_dict
from pqcompress.errors import ConfigError
from pqcompress.search.evaluate import OBJECTIVES
from pqcompress.search.surrogates import METRICS, SURROGATES

ALGORITHMS = ("surrogate", "ctaea", "random", "optuna")


@dataclass(frozen=True)
class OptimizerSettings:
    """C-TAEA on the surrogate problem: ``pop_size`` reference directions, ``generations``."""

    pop_size: int = 50
    generations: int = 1000

    def __post_init__(self) -> None:
        if self.pop_size < 2 or self.generations < 1:
            raise ConfigError("surrogate.optimizer: pop_size >= 2 and generations >= 1")


@dataclass(frozen=True)
class SurrogateSettings:
    """``selection``: the metric per target kind (``objectives``, ``constraints``), each a
    metric name or a mapping target -> metric; ``candidates``: the regressors to choose from."""

    selection: dict[str, Any] = field(
        default_factory=lambda: {"objectives": "mape", "constraints": "mape"}
    )
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    candidates: tuple[str, ...] = tuple(SURROGATES)

    def __post_init__(self) -> None:
        unknown = set(self.selection) - {"objectives", "constraints"}
        if unknown:
            raise ConfigError(
                f"surrogate.selection: unknown keys {sorted(unknown)}; use objectives, constraints"
            )
        for kind, value in self.selection.items():
            metrics = value.values() if isinstance(value, Mapping) else [value]
            bad = [m for m in metrics if m not in METRICS]
            if bad:
                raise ConfigError(f"surrogate.selection.{kind}: {bad} not in {METRICS}")
        bad = [c for c in self.candidates if c not in SURROGATES]
        if bad or not self.candidates:
            raise ConfigError(
                f"surrogate.candidates: {bad or '[]'}; use some of {list(SURROGATES)}"
            )

    def metric_for(self, kind: str, target: str) -> str:
        value = self.selection.get(kind, "mape")
        if isinstance(value, Mapping):
            return str(value.get(target, "mape"))
        return str(value)

    @property
    def label(self) -> str:
        def short(kind: str) -> str:
            v = self.selection.get(kind, "mape")
            if isinstance(v, Mapping):
                return ",".join(f"{k}:{m}" for k, m in v.items()).upper()
            return str(v).upper()

        return f"{short('objectives')}/{short('constraints')}"


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm of a study: ``algorithm`` plus its own settings (``label`` names it)."""

    algorithm: str = "surrogate"
    surrogate: SurrogateSettings | None = None
    pop_size: int = 10  # ctaea (real problem) and optuna
    generations: int | None = None  # ctaea: default budget // pop_size
    label: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"algorithm={self.algorithm!r} is not accepted; use one of {ALGORITHMS}"
            )

    def name(self, default_surrogate: SurrogateSettings, budget: int) -> str:
        if self.label:
            return self.label
        if self.algorithm == "surrogate":
            return f"surrogate {(self.surrogate or default_surrogate).label}"
        if self.algorithm == "ctaea":
            gens = self.generations or max(1, budget // self.pop_size)
            return f"ctaea {self.pop_size}x{gens}"
        return self.algorithm


@dataclass(frozen=True)
class SearchSpec:
    model: str = ""
    dataset: str = "cifar10"
    data: dict[str, Any] = field(default_factory=dict)
    split: str = "val"
    subset: int | None = 1000
    space: Any = "posttrain"
    fixed: dict[str, Any] = field(default_factory=dict)
    objectives: tuple[str, ...] = ("accuracy", "nonzero")
    constraints: dict[str, float] = field(default_factory=lambda: {"accuracy_min": 0.8})
    algorithm: str = "surrogate"
    algorithms: tuple[AlgorithmSpec, ...] = ()
    budget: int = 100
    initial: int = 20
    infill: int = 2
    surrogate: SurrogateSettings = field(default_factory=SurrogateSettings)
    repeats: int = 5
    seed: int = 0
    latency_repeats: int = 20
    pq: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    factory: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model: give a trained run directory or a .pqz file")
        if self.factory is not None:
            from pqcompress.models.factory import is_factory_path

            if not is_factory_path(self.factory):
                raise ConfigError(
                    f"factory={self.factory!r}: expected package.module:factory (the code that "
                    "builds the model a .pqz was saved from; a run directory names its own)"
                )
        if self.split not in ("val", "test"):
            raise ConfigError(f"split={self.split!r}; use val or test")
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or "accuracy" not in self.objectives or len(self.objectives) < 2:
            raise ConfigError(
                f"objectives {list(self.objectives)}: at least two of {OBJECTIVES}, accuracy among them"
            )
        unknown = set(self.constraints) - {"accuracy_min", "accuracy_drop_max"}
        if unknown or len(self.constraints) != 1:
            raise ConfigError(
                "constraints: exactly one of accuracy_min (a fraction) or accuracy_drop_max "
                "(a fraction below the unmodified model's accuracy on the same data)"
            )
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"algorithm={self.algorithm!r} is not accepted; use one of {ALGORITHMS}"
            )
        if self.budget < 2 or self.repeats < 1 or self.infill < 1:
            raise ConfigError("budget >= 2, repeats >= 1 and infill >= 1 are needed")
        if not 1 <= self.initial < self.budget:
            raise ConfigError(f"initial={self.initial} must lie in 1..budget-1 ({self.budget - 1})")
        if not isinstance(self.space, (str, Mapping)):
            raise ConfigError("space: posttrain, pq, or a mapping of variables")
        if isinstance(self.space, str) and self.space not in ("posttrain", "pq"):
            raise ConfigError(f"space={self.space!r}; use posttrain, pq or a mapping")

    @property
    def runs(self) -> tuple[AlgorithmSpec, ...]:
        return self.algorithms or (AlgorithmSpec(self.algorithm),)

    def accuracy_floor(self, reference_accuracy: float) -> float:
        if "accuracy_min" in self.constraints:
            return float(self.constraints["accuracy_min"])
        return reference_accuracy - float(self.constraints["accuracy_drop_max"])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_dict(self)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpec:
        if isinstance(data, Mapping) and "algorithms" in data:
            items = [
                {"algorithm": a} if isinstance(a, str) else a for a in data["algorithms"] or []
            ]
            data = {**data, "algorithms": items}
        return from_dict(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpec:
        from pqcompress.yamlio import read_yaml_file

        raw = read_yaml_file(path, "search spec") or {}
        if isinstance(raw, dict) and not raw.get("name"):
            raw = {**raw, "name": Path(path).stem}
        return cls.from_dict(raw)
