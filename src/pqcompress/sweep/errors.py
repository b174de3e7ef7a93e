"""Errors of the sweep results store (executor errors: ``pqcompress.execute.ExecutorError``)."""

from __future__ import annotations

from pqcompress.errors import PQCError


class StoreError(PQCError):
    """The results store cannot be opened or used (not SQLite, newer schema, foreign DB)."""
