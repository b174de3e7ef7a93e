"""The executor contract, on each backend: setup once per worker, outcomes in item order from
``map``, streaming callbacks that may decline an item, a dying worker's item reported through
``Job.failure`` (or one ExecutorError), workers kept between calls until ``close``."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from pqcompress.errors import RegistryError
from pqcompress.execute import ExecutorError, Job, make_executor
from pqcompress.testing import jobs

JOB = Job(fn=jobs.describe, setup=jobs.remember, setup_args=("warm",), failure=jobs.failed)


def _backends() -> list[str]:
    return ["inline", "local", "ray"]


@pytest.fixture(autouse=True)
def _fresh_state():
    jobs._STATE.clear()
    yield
    jobs._STATE.clear()


@pytest.mark.parametrize("backend", _backends())
def test_map_returns_outcomes_in_item_order_after_one_setup_per_worker(backend: str) -> None:
    if backend == "ray":
        pytest.importorskip("ray")
    workers = 1 if backend == "inline" else 2
    with make_executor(backend, JOB, workers=workers) as ex:
        first = ex.map(list(range(7)))
        second = ex.map([10, 11])
    assert [o["value"] for o in first] == [i * i for i in range(7)]
    assert [o["value"] for o in second] == [100, 121]
    outcomes = first + second
    assert {o["tag"] for o in outcomes} == {"warm"}
    assert {o["setups"] for o in outcomes} == {1}  # kept between calls: set up once per worker
    pids = {o["pid"] for o in outcomes}
    if backend == "inline":
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids and 1 <= len(pids) <= workers
    assert ex.map([]) == []


@pytest.mark.parametrize("backend", _backends())
def test_run_streams_and_an_item_declined_by_on_start_never_runs(backend: str) -> None:
    if backend == "ray":
        pytest.importorskip("ray")
    started, results = [], {}

    def on_start(i: int, item: int) -> bool:
        started.append(i)
        return item % 2 == 0  # odd items declined

    with make_executor(backend, JOB, workers=1) as ex:
        ex.run([0, 1, 2, 3, 4], on_start, lambda i, o: results.__setitem__(i, o["value"]))
    assert sorted(started) == [0, 1, 2, 3, 4]
    assert results == {0: 0, 2: 4, 4: 16}


def test_local_worker_that_dies_yields_the_jobs_failure_and_is_replaced() -> None:
    with make_executor("local", JOB, workers=1) as ex:
        out = ex.map([2, "die", 3])
    assert out[0]["value"] == 4 and out[2]["value"] == 9
    assert out[1] == {"failed": "die", "why": "the worker process died (exit code 3)"}
    assert out[0]["pid"] != out[2]["pid"]  # a new worker took over
    assert mp.active_children() == []  # close() ended every worker


def test_a_job_without_failure_raises_one_executor_error_and_ends_the_workers() -> None:
    bare = Job(fn=jobs.describe)
    ex = make_executor("local", bare, workers=1)
    with pytest.raises(ExecutorError, match=r"worker died .*exit code 3"):
        ex.map(["die"])
    assert mp.active_children() == []
    ex.close()  # safe twice


def test_ray_actor_that_raises_yields_the_jobs_failure() -> None:
    pytest.importorskip("ray")
    with make_executor("ray", JOB, workers=1) as ex:
        out = ex.map([1, "not a number", 2])
    assert out[0]["value"] == 1 and out[2]["value"] == 4
    assert out[1]["failed"] == "not a number" and "TypeError" in out[1]["why"]


def test_unknown_backend_ray_address_and_inline_workers_are_one_error_each() -> None:
    with pytest.raises(RegistryError, match="unknown executor 'slurm'"):
        make_executor("slurm", JOB)
    with pytest.raises(ExecutorError, match="--ray-address applies to --executor ray only"):
        make_executor("local", JOB, ray_address="auto")
    with pytest.raises(ExecutorError, match="one item at a time"):
        make_executor("inline", JOB, workers=2)
    with pytest.raises(ExecutorError, match="workers=0 must be >= 1"):
        from pqcompress.execute.local import LocalExecutor

        LocalExecutor(JOB, 0)
