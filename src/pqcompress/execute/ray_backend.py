"""The "ray" backend: one Ray actor per slot on a local or remote cluster, each running the job's
setup once and then its items; outcomes go to the driver."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from pqcompress.execute.base import Executor, ExecutorError, Job, OnResult, OnStart, cpu_count


def import_ray() -> Any:
    """``import ray`` or an ExecutorError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("the ray executor needs Ray: pip install 'pqcompress[ray]'") from None
    return ray


AUTH_HINT = (
    "; if the cluster uses token authentication (Ray >= 2.5x turns it on when "
    "~/.ray/auth_token exists), set RAY_AUTH_MODE=token here so that the token is sent, or "
    "start the head with RAY_AUTH_MODE=disabled"
)


def init_ray(address: str | None, *, num_cpus: int | None = None) -> Any:
    """``ray.init`` joining ``address`` (or a private local Ray with ``num_cpus``), quiet; a
    failure to join is one ExecutorError naming the address (and the token-auth fix)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, AuthenticationError...
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = AUTH_HINT if "auth" in str(exc).lower() else ""
        raise ExecutorError(
            f"cannot join the Ray cluster at {address or 'local'}: {text}{hint}"
        ) from None
    return ray


class _RemoteWorker:
    """The actor: the job's setup once, then one item per call."""

    def __init__(self, job: Job, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.job = job
        if job.setup is not None:
            job.setup(*job.setup_args)

    def run(self, item: Any) -> Any:
        return self.job.fn(item)


class RayExecutor(Executor):
    """Runs the job on as many actors as the cluster has slots (one CPU each; one GPU each when
    the cluster has GPUs), at most ``workers`` on a private Ray.

    ``address=None`` starts a private local Ray with ``workers`` CPUs; otherwise it joins the
    cluster at ``address`` ("auto", "ray://head:10001", ...). Torch threads per actor: the
    machine's cores // slots for a private Ray, 1 on a cluster (one CPU per actor). Files a
    job writes must be on storage every node shares for work to resume on another node.
    ``startup_s`` is the time from ``ray.init`` to the cluster being ready to take work. An
    item whose call raises or whose actor dies yields ``job.failed(item, why)``; the actor is
    replaced.
    """

    name = "ray"

    def __init__(self, job: Job, workers: int = 1, *, address: str | None = None) -> None:
        super().__init__(job)
        if workers < 1:
            raise ExecutorError(f"workers={workers} must be >= 1")
        self.workers = workers
        self.address = address
        self._ray: Any = None
        self._started_here = False
        self._actors: list[Any] = []
        self._actor_class: Any = None

    def _start(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        t0 = time.perf_counter()
        self._started_here = not ray.is_initialized()
        if self._started_here:
            init_ray(self.address, num_cpus=self.workers)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        slots = gpus if gpus else max(1, int(resources.get("CPU", self.workers)))
        if not self.address:
            slots = min(slots, self.workers)
        self.threads = max(1, cpu_count() // slots) if not self.address else 1
        self._actor_class = ray.remote(_RemoteWorker).options(
            num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=0
        )
        self._actors = [None] * slots
        self.startup_s = time.perf_counter() - t0
        self._ray = ray
        return ray

    def _actor(self, slot: int) -> Any:
        if self._actors[slot] is None:
            self._actors[slot] = self._actor_class.remote(self.job, self.threads)
        return self._actors[slot]

    def _run(self, queue: deque[tuple[int, Any]], on_start: OnStart, on_result: OnResult) -> None:
        ray = self._start()
        free = list(range(len(self._actors)))
        inflight: dict[Any, tuple[int, int, Any]] = {}
        while queue or inflight:
            while queue and free:
                index, item = queue.popleft()
                if on_start(index, item) is False:
                    continue  # declined (e.g. claimed by another process)
                slot = free.pop()
                inflight[self._actor(slot).run.remote(item)] = (slot, index, item)
            if not inflight:
                continue
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                slot, index, item = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the call raised, or its actor died
                    self._drop(slot)
                    outcome = self.job.failed(item, f"{type(exc).__name__}: {exc}"[:4000])
                free.append(slot)
                on_result(index, outcome)

    def _drop(self, slot: int) -> None:
        actor, self._actors[slot] = self._actors[slot], None
        if actor is not None and self._ray is not None:
            self._ray.kill(actor)

    def close(self) -> None:
        if self._ray is None:
            return
        for slot in range(len(self._actors)):
            self._drop(slot)
        if self._started_here:
            self._ray.shutdown()
        self._ray = None
