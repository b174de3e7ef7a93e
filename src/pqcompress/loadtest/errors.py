"""The load test's own error class, and its one reader of typed settings."""

from __future__ import annotations

from typing import Any, TypeVar

from pqcompress.config import from_dict
from pqcompress.errors import ConfigError, PQCError

T = TypeVar("T")


class LoadTestError(PQCError):
    """A load profile, target, payload or monitor that cannot be used, or a run that failed."""


def read_config(cls: type[T], data: Any, where: str) -> T:
    """``cls`` (a dataclass) from ``data`` through ``pqcompress.config.from_dict``, the one
    reader of typed settings (unknown keys named with a close match, types checked, ``1e-3``
    a number); its refusal becomes one LoadTestError saying where."""
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise LoadTestError(f"{where}: {exc}") from None
