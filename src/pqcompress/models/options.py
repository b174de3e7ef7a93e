"""Checks for the keyword options model builders accept; failures raise ConfigError."""

from __future__ import annotations

from pqcompress.errors import ConfigError


def check_dropout(model: str, dropout: float) -> float:
    """Return ``dropout`` as a float if it is in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ConfigError(f"{model}: dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{model}: dropout={dropout} must be in [0, 1)")
    return float(dropout)


def check_width(model: str, width: float) -> float:
    """Return ``width`` (a channel multiplier) as a float if it is > 0."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"{model}: width must be a number > 0, got {width!r}")
    return float(width)


def check_flag(model: str, name: str, value: bool) -> bool:
    """Return ``value`` if it is a bool (YAML 'yes'/'no' strings are rejected, not guessed)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{model}: {name} must be true or false, got {value!r}")
    return value


def scaled(channels: int, width: float) -> int:
    """``channels`` times ``width``, rounded, at least 1."""
    return max(1, round(channels * width))
