"""Sweeps: grid spec, the runner (on any ``pqcompress.execute`` backend) and the SQLite results
store."""

from __future__ import annotations

from pqcompress.execute import ExecutorError
from pqcompress.results import ResultsStore, StoreError
from pqcompress.sweep.runner import SweepSummary, plan_sweep, run_sweep
from pqcompress.sweep.spec import ExportSettings, SweepPoint, SweepSpec, run_id

__all__ = [
    "ExecutorError",
    "ExportSettings",
    "ResultsStore",
    "StoreError",
    "SweepPoint",
    "SweepSpec",
    "SweepSummary",
    "plan_sweep",
    "run_id",
    "run_sweep",
]
