"""Search spaces: named variables (choice, float, int, bool), their vector form for pymoo,
their features for the surrogates, and the study's x1..x7 (``posttrain``) and ``pq`` spaces.

Vector form (what pymoo and Optuna see): one coordinate per variable; a choice with k options
and a bool are integers 0..k-1 (kept integral by :meth:`Space.repair`, so mixed variables are
handled explicitly rather than by rounding inside the objective); floats and ints keep their
bounds. Features (what the regressors see): floats scaled to [0, 1], ints likewise, and one
one-hot column per option of a choice (an ordinal code would invent an order).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pqcompress.errors import ConfigError

KINDS = ("choice", "float", "int", "bool")
DECIMALS = 6  # floats are rounded to this many decimals: the memo key of a configuration


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"variable {self.name}: kind={self.kind!r}; use one of {KINDS}")
        if self.kind == "choice" and len(self.choices) < 2:
            raise ConfigError(f"variable {self.name}: a choice needs at least two options")
        if self.kind in ("float", "int") and not self.low < self.high:
            raise ConfigError(
                f"variable {self.name}: low {self.low} must be below high {self.high}"
            )

    @property
    def bounds(self) -> tuple[float, float]:
        if self.kind == "choice":
            return 0.0, float(len(self.choices) - 1)
        if self.kind == "bool":
            return 0.0, 1.0
        return float(self.low), float(self.high)

    @property
    def integral(self) -> bool:
        return self.kind != "float"

    def decode(self, v: float) -> Any:
        lo, hi = self.bounds
        v = min(max(float(v), lo), hi)
        if self.kind == "choice":
            return self.choices[round(v)]
        if self.kind == "bool":
            return bool(round(v))
        if self.kind == "int":
            return round(v)
        return round(v, DECIMALS)

    def encode(self, value: Any) -> float:
        if self.kind == "choice":
            if value not in self.choices:
                raise ConfigError(f"variable {self.name}: {value!r} is not one of {self.choices}")
            return float(self.choices.index(value))
        if self.kind == "bool":
            return float(bool(value))
        return float(value)


@dataclass(frozen=True)
class Space:
    """An ordered set of variables; ``name`` says which evaluator applies them."""

    name: str
    variables: tuple[Variable, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def xl(self) -> np.ndarray:
        return np.array([v.bounds[0] for v in self.variables])

    @property
    def xu(self) -> np.ndarray:
        return np.array([v.bounds[1] for v in self.variables])

    def repair(self, X: np.ndarray) -> np.ndarray:
        """Clip to the bounds and round the integral coordinates (choices, bools, ints)."""
        X = np.clip(np.atleast_2d(np.asarray(X, dtype=float)), self.xl, self.xu)
        for j, v in enumerate(self.variables):
            if v.integral:
                X[:, j] = np.round(X[:, j])
        return X

    def decode(self, x: Sequence[float]) -> dict[str, Any]:
        return {v.name: v.decode(x[j]) for j, v in enumerate(self.variables)}

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array([v.encode(config[v.name]) for v in self.variables])

    def key(self, config: Mapping[str, Any]) -> str:
        """The memo key: canonical JSON of the decoded configuration."""
        return json.dumps({n: config[n] for n in self.names}, sort_keys=True)

    def features(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        rows = []
        for c in configs:
            row: list[float] = []
            for v in self.variables:
                if v.kind == "choice":
                    row += [1.0 if c[v.name] == o else 0.0 for o in v.choices]
                elif v.kind == "bool":
                    row.append(float(bool(c[v.name])))
                else:
                    lo, hi = v.bounds
                    row.append((float(c[v.name]) - lo) / (hi - lo))
            rows.append(row)
        return np.array(rows, dtype=float)

    def latin_hypercube(self, n: int, seed: int) -> np.ndarray:
        """``n`` points of a Latin hypercube over the vector form (repaired)."""
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=len(self.variables), seed=seed).random(n)
        return self.repair(self._scale(u))

    def uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.repair(self._scale(rng.random((n, len(self.variables)))))

    def _scale(self, u: np.ndarray) -> np.ndarray:
        # integral coordinates: equal-width bins so that every option is equally likely
        lo, hi = self.xl.copy(), self.xu.copy()
        for j, v in enumerate(self.variables):
            if v.integral:
                lo[j], hi[j] = lo[j] - 0.5 + 1e-9, hi[j] + 0.5 - 1e-9
        return lo + u * (hi - lo)


WHICH = ("none", "random", "all")
WHAT = ("biases", "weights", "both")


def posttrain_space() -> Space:
    """The study's x1..x7 (docs/method.md §7) over :class:`pqcompress.posttrain.PostTrainConfig`."""
    return Space(
        "posttrain",
        (
            Variable("linear_layers", "choice", choices=WHICH),  # x1
            Variable("conv_layers", "choice", choices=WHICH),  # x2
            Variable("linear_amount", "float", 0.01, 0.99),  # x3
            Variable("conv_amount", "float", 0.01, 0.99),  # x4
            Variable("linear_params", "choice", choices=WHAT),  # x5
            Variable("conv_params", "choice", choices=WHAT),  # x6
            Variable("dynamic_int8", "bool"),  # x7
        ),
    )


def custom_space(name: str, spec: Mapping[str, Any]) -> Space:
    """A space from a mapping ``{name: {kind, low, high, choices}}`` (YAML ``space:``)."""
    variables = []
    for vname, v in spec.items():
        if not isinstance(v, Mapping):
            raise ConfigError(f"space.{vname} must be a mapping with kind, low/high or choices")
        unknown = set(v) - {"kind", "low", "high", "choices"}
        if unknown:
            raise ConfigError(f"space.{vname}: unknown keys {sorted(unknown)}")
        variables.append(
            Variable(
                str(vname),
                str(v.get("kind", "float")),
                float(v.get("low", 0.0)),
                float(v.get("high", 1.0)),
                tuple(v.get("choices", ())),
            )
        )
    if not variables:
        raise ConfigError("space: a custom space needs at least one variable")
    return Space(name, tuple(variables))


def is_finite_config(config: Mapping[str, Any]) -> bool:
    return all(not (isinstance(v, float) and not math.isfinite(v)) for v in config.values())
