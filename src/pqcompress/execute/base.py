"""The executor contract: a ``Job`` (what each worker runs) mapped over items by a backend.

A backend starts its workers on first use, runs ``job.setup(*job.setup_args)`` once in each,
then ``job.fn(item)`` for every item it is handed, and keeps the workers until ``close()``
(or the end of a ``with`` block), so a worker's loaded state (a model, a dataset) serves many
items and many calls. ``run`` streams: ``on_start(i, item)`` just before item ``i`` is sent
(returning False skips it), ``on_result(i, outcome)`` as each finishes, in completion order.
``map`` is ``run`` collected in item order. An item whose worker dies (or, on Ray, whose
call raises) yields ``job.failure(item, why)``; a job without ``failure`` gets one
``ExecutorError`` instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pqcompress.errors import PQCError

OnStart = Callable[[int, Any], "bool | None"]
OnResult = Callable[[int, Any], None]


class ExecutorError(PQCError):
    """An executor is unknown, misconfigured, lost a worker, or its backend (e.g. Ray) is not
    installed."""


@dataclass(frozen=True)
class Job:
    """What every worker runs. ``fn`` and ``setup`` must be importable module-level functions
    (workers in other processes receive them by reference); ``preload`` names modules the
    local backend's fork server imports once, so that each worker starts warm."""

    fn: Callable[[Any], Any]
    setup: Callable[..., None] | None = None
    setup_args: tuple[Any, ...] = ()
    failure: Callable[[Any, str], Any] | None = None
    preload: tuple[str, ...] = ()

    def failed(self, item: Any, why: str) -> Any:
        """The outcome of an item whose worker died: ``failure(item, why)`` or ExecutorError."""
        if self.failure is None:
            raise ExecutorError(f"a worker died while running an item: {why}")
        return self.failure(item, why)


class Executor:
    """Base of the backends: ``run``, ``map``, ``close`` and the context manager."""

    name = "executor"
    startup_s: float | None = None  # backend start until the first worker was ready
    threads: int | None = None  # torch threads per worker (None: the caller's)

    def __init__(self, job: Job) -> None:
        self.job = job

    def run(
        self,
        items: Sequence[Any],
        on_start: OnStart | None = None,
        on_result: OnResult | None = None,
    ) -> None:
        """``job.fn`` over ``items``: ``on_start(i, item)`` just before item ``i`` is sent
        (False skips it), ``on_result(i, outcome)`` as each finishes. An interruption or a
        callback's error ends the workers (``close``) and propagates."""
        try:
            self._run(deque(enumerate(items)), on_start or _accept, on_result or _ignore)
        except BaseException:
            self.close()
            raise

    def _run(self, queue: deque[tuple[int, Any]], on_start: OnStart, on_result: OnResult) -> None:
        """The backend's loop over ``(index, item)`` pairs."""
        raise NotImplementedError

    def map(self, items: Sequence[Any]) -> list[Any]:
        """``job.fn`` over ``items`` on the workers; the outcomes in item order."""
        out: list[Any] = [None] * len(items)

        def keep(i: int, outcome: Any) -> None:
            out[i] = outcome

        if items:
            self.run(items, None, keep)
        return out

    def close(self) -> None:
        """End the workers (safe to call twice)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accept(_index: int, _item: Any) -> bool:
    return True


def _ignore(_index: int, _outcome: Any) -> None:
    return None


def cpu_count() -> int:
    """CPUs this process may use: affinity mask capped by the cgroup CPU quota
    (``pqcompress.cpus.cpu_budget``, the one rule the trainer and the service use too)."""
    from pqcompress.cpus import cpu_budget

    return cpu_budget().threads


def gpu_count() -> int:
    """CUDA devices visible to torch (0 without CUDA); imports torch."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_ray_address(executor: str, ray_address: str | None) -> None:
    """The one rule for ``--ray-address``: it names a Ray cluster, so it needs ``--executor
    ray`` (sweeps and searches alike)."""
    if ray_address and executor != "ray":
        raise ExecutorError(
            f"--ray-address applies to --executor ray only (got --executor {executor})"
        )
