"""Errors of the sweep runner and the results store."""

from __future__ import annotations

from pqcompress.errors import PQCError


class StoreError(PQCError):
    """The results store cannot be opened or used (not SQLite, newer schema, foreign DB)."""


class ExecutorError(PQCError):
    """An executor is unknown, misconfigured or its backend (e.g. Ray) is not installed."""


def check_ray_address(executor: str, ray_address: str | None) -> None:
    """The one rule for ``--ray-address``: it names a Ray cluster, so it needs ``--executor
    ray`` (sweeps and searches alike)."""
    if ray_address and executor != "ray":
        raise ExecutorError(
            f"--ray-address applies to --executor ray only (got --executor {executor})"
        )
