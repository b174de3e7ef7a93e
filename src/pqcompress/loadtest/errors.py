"""The load test's own error class, and its one check of a mapping's keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pqcompress.errors import PQCError


class LoadTestError(PQCError):
    """A load profile, target, payload or monitor that cannot be used, or a run that failed."""


def check_keys(data: Mapping[str, Any], accepted: Iterable[str], where: str) -> None:
    """LoadTestError naming the keys of ``data`` that ``where`` does not accept, and those
    it does."""
    known = set(accepted)
    unknown = sorted(set(data) - known)
    if unknown:
        raise LoadTestError(
            f"unknown key(s) {', '.join(unknown)} in {where}; accepted: {', '.join(sorted(known))}"
        )
