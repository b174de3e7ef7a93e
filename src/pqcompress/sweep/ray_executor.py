"""The "ray" executor: one Ray task per point on a local or remote cluster; results go to the driver."""

from __future__ import annotations

import time
from typing import Any

from pqcompress.sweep.errors import ExecutorError
from pqcompress.sweep.local import OnResult, OnStart, cpu_count


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


class RayExecutor:
    """Runs each task as ``ray.remote(execute_point)`` with at most as many in flight as the
    cluster has slots (one CPU per task; one GPU per task when the cluster has GPUs).

    ``address=None`` starts a private local Ray with ``workers`` CPUs; otherwise it joins the
    cluster at ``address`` ("auto", "ray://head:10001", ...). Torch threads per task: the
    machine's cores // slots for a private Ray, 1 on a cluster (one CPU per task). Run directories must be on storage
    every node shares for a point to resume on another node. ``startup_s`` is the time from
    ``ray.init`` to the cluster being ready to take tasks.
    """

    name = "ray"

    def __init__(self, workers: int = 1, *, address: str | None = None) -> None:
        if workers < 1:
            raise ExecutorError(f"workers={workers} must be >= 1")
        self.workers = workers
        self.address = address
        self.startup_s: float | None = None

    def run(self, tasks: list[dict[str, Any]], on_start: OnStart, on_result: OnResult) -> None:
        from pqcompress.sweep.worker import execute_point

        ray = import_ray()
        t0 = time.perf_counter()
        started_here = not ray.is_initialized()
        if started_here:
            init_ray(self.address, num_cpus=self.workers)
        try:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            slots = gpus if gpus else max(1, int(resources.get("CPU", self.workers)))
            if not self.address:
                slots = min(slots, self.workers)
            remote = ray.remote(execute_point).options(
                num_cpus=1, num_gpus=1 if gpus else 0, max_retries=0
            )
            self.startup_s = time.perf_counter() - t0
            threads = max(1, cpu_count() // slots) if not self.address else 1
            queue = [dict(t, threads=t.get("threads") or threads) for t in tasks]
            queue.reverse()
            inflight: dict[Any, dict[str, Any]] = {}
            while queue or inflight:
                while queue and len(inflight) < slots:
                    task = queue.pop()
                    if on_start(task) is False:  # declined (claimed by another process)
                        continue
                    inflight[remote.remote(task)] = task
                done, _ = ray.wait(list(inflight), num_returns=1)
                for ref in done:
                    task = inflight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:
                        outcome = {
                            "run_id": task["run_id"],
                            "ok": False,
                            "status": "failed",
                            "values": {},
                            "epochs": [],
                            "error": f"{type(exc).__name__}: {exc}"[:4000],
                        }
                    on_result(outcome)
        finally:
            if started_here:
                ray.shutdown()
