"""Checks for the per-dataset ``DataConfig.options``; unknown keys raise ConfigError."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pqcompress.errors import ConfigError


def resolve_options(dataset: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict:
    """``defaults`` updated with ``options``; a key not in ``defaults`` is a ConfigError."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(defaults), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        accepted = ", ".join(sorted(defaults)) or "none"
        raise ConfigError(
            f"{dataset}: unknown data option '{unknown[0]}'{hint}; accepted: {accepted}"
        )
    return {**defaults, **options}


def positive_int(dataset: str, name: str, value: Any) -> int:
    """``value`` if it is an int >= 1, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{dataset}: option {name} must be a positive integer, got {value!r}")
    return value


def number(dataset: str, name: str, value: Any) -> float:
    """``value`` as a float if it is a real number, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{dataset}: option {name} must be a number, got {value!r}")
    return float(value)


def name_list(dataset: str, name: str, value: Any, accepted: tuple[str, ...]) -> list[str]:
    """``value`` as a non-empty list of distinct names drawn from ``accepted``."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{dataset}: option {name} must be a non-empty list, got {value!r}")
    bad = [v for v in value if v not in accepted]
    if bad:
        raise ConfigError(
            f"{dataset}: option {name} has unknown entries {bad}; accepted: {', '.join(accepted)}"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{dataset}: option {name} lists a name twice: {list(value)}")
    return list(value)
