"""Sweeps: grid spec, runners (local processes, Ray) and the SQLite results store."""

from __future__ import annotations

from pqcompress.sweep.errors import ExecutorError, StoreError
from pqcompress.sweep.runner import SweepSummary, plan_sweep, run_sweep
from pqcompress.sweep.spec import SweepPoint, SweepSpec, run_id
from pqcompress.sweep.store import ResultsStore

__all__ = [
    "ExecutorError",
    "ResultsStore",
    "StoreError",
    "SweepPoint",
    "SweepSpec",
    "SweepSummary",
    "plan_sweep",
    "run_id",
    "run_sweep",
]
