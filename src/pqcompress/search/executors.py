"""Where real evaluations run: in this process, in local worker processes, or on Ray.

Each worker builds its evaluator once (the model and the evaluation data stay loaded) and then
evaluates the configurations it is handed. ``ray`` joins an existing cluster by address
(``ray start --head`` / ``--ray-address``) or starts a local one (``address=None``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pqcompress.errors import ConfigError
from pqcompress.search.evaluate import EvalSettings, build_evaluator, evaluate_many

EXECUTORS = ("inline", "local", "ray")
_WORKER: Any = None


def _init_worker(settings: EvalSettings, threads: int) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(max(1, threads))
    _WORKER = build_evaluator(settings)


def _work(config: Mapping[str, Any]) -> dict[str, Any]:
    return evaluate_many(_WORKER, [config])[0]


class Executor:
    """``map(configs) -> results`` in order; ``close()`` ends the workers."""

    def __init__(
        self,
        settings: EvalSettings,
        kind: str = "inline",
        *,
        workers: int = 1,
        ray_address: str | None = None,
        evaluator: Any = None,
    ) -> None:
        if kind not in EXECUTORS:
            raise ConfigError(f"executor={kind!r} is not accepted; use one of {EXECUTORS}")
        from pqcompress.sweep.errors import check_ray_address

        check_ray_address(kind, ray_address)
        self.kind, self.workers = kind, max(1, int(workers))
        self._pool: Any = None
        self._actors: Any = None
        self.evaluator = evaluator
        if kind == "inline":
            self.evaluator = evaluator or build_evaluator(settings)
        elif kind == "local":
            from pqcompress.cpus import cpu_budget

            threads = max(1, cpu_budget().threads // self.workers)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(settings, threads),
            )
        else:
            self._actors = _ray_actors(settings, self.workers, ray_address)

    def reference(self) -> dict[str, float]:
        """The unmodified model's measures (every objective), from one evaluator."""
        from pqcompress.search.evaluate import reference_measures

        if self.evaluator is not None:
            return reference_measures(self.evaluator)
        if self._pool is not None:
            return self._pool.submit(_reference_in_worker).result()
        import ray

        return ray.get(self._actors[0].reference.remote())

    def map(self, configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not configs:
            return []
        if self.evaluator is not None:
            return evaluate_many(self.evaluator, configs)
        if self._pool is not None:
            return list(self._pool.map(_work, configs))
        from ray.util import ActorPool

        pool = ActorPool(self._actors)
        return list(pool.map(lambda a, c: a.evaluate.remote(c), list(configs)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._actors is not None:
            import ray

            for a in self._actors:
                ray.kill(a)
            self._actors = None


def _reference_in_worker() -> dict[str, float]:
    from pqcompress.search.evaluate import reference_measures

    return reference_measures(_WORKER)


def _ray_actors(settings: EvalSettings, workers: int, address: str | None) -> list[Any]:
    from pqcompress.sweep.ray_executor import init_ray

    ray = init_ray(address, num_cpus=workers)

    @ray.remote(num_cpus=1)
    class RemoteEvaluator:
        def __init__(self, s: EvalSettings) -> None:
            import torch

            torch.set_num_threads(1)
            self.evaluator = build_evaluator(s)

        def evaluate(self, config: Mapping[str, Any]) -> dict[str, Any]:
            return evaluate_many(self.evaluator, [config])[0]

        def reference(self) -> dict[str, float]:
            from pqcompress.search.evaluate import reference_measures

            return reference_measures(self.evaluator)

    return [RemoteEvaluator.remote(settings) for _ in range(workers)]
