"""The load test's own error class."""

from __future__ import annotations

from pqcompress.errors import PQCError


class LoadTestError(PQCError):
    """A load profile, target, payload or monitor that cannot be used, or a run that failed."""
