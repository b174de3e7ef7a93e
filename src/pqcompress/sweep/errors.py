"""Errors of the sweep runner and the results store."""

from __future__ import annotations

from pqcompress.errors import PQCError


class StoreError(PQCError):
    """The results store cannot be opened or used (not SQLite, newer schema, foreign DB)."""


class ExecutorError(PQCError):
    """An executor is unknown, misconfigured or its backend (e.g. Ray) is not installed."""
