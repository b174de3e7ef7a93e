"""Where work runs: one ``Executor`` contract (``execute.base``) with three backends registered
by name: ``inline`` (this process), ``local`` (worker processes forked from a warm fork server)
and ``ray`` (actors on a local or remote Ray cluster). Sweeps and searches both run here:

    with make_executor("local", Job(fn=work, setup=load_once), workers=2) as ex:
        outcomes = ex.map(items)
"""

from __future__ import annotations

from typing import Any

from pqcompress.execute.base import (
    Executor,
    ExecutorError,
    Job,
    OnResult,
    OnStart,
    check_ray_address,
    cpu_count,
    gpu_count,
)
from pqcompress.registry import Registry

EXECUTORS: Registry[Any] = Registry("executor")


@EXECUTORS.register("local")
def _local(job: Job, workers: int | None, ray_address: str | None) -> Executor:
    from pqcompress.execute.local import LocalExecutor

    check_ray_address("local", ray_address)
    gpus = gpu_count()
    n = workers or gpus or 1
    return LocalExecutor(job, n, gpus=[i % gpus for i in range(n)] if gpus else None)


@EXECUTORS.register("inline")
def _inline(job: Job, workers: int | None, ray_address: str | None) -> Executor:
    from pqcompress.execute.local import InlineExecutor

    check_ray_address("inline", ray_address)
    if workers not in (None, 1):
        raise ExecutorError(f"--executor inline runs one item at a time, got --workers {workers}")
    return InlineExecutor(job)


@EXECUTORS.register("ray")
def _ray(job: Job, workers: int | None, ray_address: str | None) -> Executor:
    from pqcompress.execute.ray_backend import RayExecutor, import_ray

    import_ray()  # fail before anything is written when Ray is missing
    return RayExecutor(job, workers or (1 if ray_address else cpu_count()), address=ray_address)


def make_executor(
    name: str, job: Job, *, workers: int | None = None, ray_address: str | None = None
) -> Executor:
    """The backend registered as ``name`` running ``job``; unknown names, ``--ray-address``
    without ray, inline with several workers and a missing Ray each raise one error here,
    before any work starts."""
    executor: Executor = EXECUTORS.get(name)(job, workers, ray_address)
    return executor


def available_executors() -> list[str]:
    return EXECUTORS.names()


__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "Job",
    "OnResult",
    "OnStart",
    "available_executors",
    "check_ray_address",
    "cpu_count",
    "gpu_count",
    "make_executor",
]
