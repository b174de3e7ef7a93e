"""The "local" executor: N worker processes forked from a warm fork server, dying with the driver;
and the "inline" executor: every point in the driver process, one after another."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from pqcompress.sweep.errors import ExecutorError

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
PRELOAD = ["pqcompress.sweep.preload"]
PARENT_POLL_S = 1.0
STOP_TIMEOUT_S = 5.0

# on_start(task) is called just before a task runs; returning False declines it (skipped)
OnStart = Callable[[dict[str, Any]], "bool | None"]
OnResult = Callable[[dict[str, Any]], None]


def cpu_count() -> int:
    """CPUs this process may use: affinity mask capped by the cgroup CPU quota
    (``pqcompress.cpus.cpu_budget``, the one rule the trainer and the service use too)."""
    from pqcompress.cpus import cpu_budget

    return cpu_budget().threads


def start_forkserver(threads: int | None = None) -> None:
    """Start the fork server now (returns at once; it imports ``PRELOAD`` in the background).

    Workers are forked from it, so each starts with torch, training, codec and numba already
    loaded instead of re-importing them. The server stays single-threaded (it runs no torch op;
    OpenBLAS gets 1 thread there) and never uses OpenMP, so forking from it is safe; it exits
    when this process does. Safe to call more than once.
    """
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    n = str(threads or cpu_count())
    env = {k: n for k in THREAD_ENV} | {"OPENBLAS_NUM_THREADS": "1"}
    with _environ(env):  # the server's environment is the workers' environment
        forkserver.ensure_running()


def gpu_count() -> int:
    """CUDA devices visible to torch (0 without CUDA); imports torch."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LocalExecutor:
    """Runs tasks in ``workers`` long-lived processes forked from a warm fork server
    (``start_forkserver``); the driver gets every result.

    Worker ``i`` sees only GPU ``gpus[i]`` (CUDA_VISIBLE_DEVICES) when ``gpus`` is given, and
    uses ``threads`` CPU threads (default: cores // workers). Workers ignore Ctrl-C (the
    driver stops them) and exit when the driver dies, even by kill -9. A worker that dies
    mid-task yields a failed result for that task and is replaced.
    """

    name = "local"

    def __init__(
        self, workers: int = 1, *, threads: int | None = None, gpus: list[int] | None = None
    ) -> None:
        if workers < 1:
            raise ExecutorError(f"workers={workers} must be >= 1")
        if gpus is not None and len(gpus) < workers:
            raise ExecutorError(f"{workers} workers need {workers} GPUs, got {gpus}")
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)
        self.gpus = gpus
        self.startup_s: float | None = None  # the first worker's start-to-ready time

    def run(self, tasks: list[dict[str, Any]], on_start: OnStart, on_result: OnResult) -> None:
        """Run every task; ``on_start(task)`` before sending it (False: skip it),
        ``on_result(outcome)`` after."""
        queue = deque(dict(t, threads=t.get("threads") or self.threads) for t in tasks)
        slots: list[_Worker | None] = [None] * min(self.workers, len(queue))
        start_forkserver(self.threads)
        ctx = mp.get_context("forkserver")
        try:
            while queue or any(w is not None and w.task is not None for w in slots):
                for i, w in enumerate(slots):
                    while queue and (w is None or w.task is None):
                        task = queue.popleft()
                        if on_start(task) is False:  # declined (claimed elsewhere): next one
                            continue
                        if w is None:
                            w = slots[i] = _Worker(ctx, self.threads, self._gpu(i))
                        w.send(task)
                busy = [w for w in slots if w is not None and w.task is not None]
                if not busy:
                    continue
                wait([x for w in busy for x in (w.conn, w.process.sentinel)])
                for i, w in enumerate(slots):
                    if w is None or w.task is None:
                        continue
                    outcome = w.poll()
                    if outcome is not None:
                        if self.startup_s is None and "worker_startup_s" in outcome:
                            self.startup_s = outcome["worker_startup_s"]
                        on_result(outcome)
                    elif not w.process.is_alive():
                        on_result(w.died())
                        slots[i] = None
        finally:
            for w in slots:
                if w is not None:
                    w.stop()

    def _gpu(self, i: int) -> int | None:
        return None if self.gpus is None else self.gpus[i]


class _Worker:
    """One worker process and the driver's end of its pipe."""

    def __init__(self, ctx: Any, threads: int, gpu: int | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        env = {k: str(threads) for k in THREAD_ENV}
        if gpu is not None:  # index into the devices this process may see
            visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
            env["CUDA_VISIBLE_DEVICES"] = visible[gpu] if gpu < len(visible) else str(gpu)
        self.process = ctx.Process(
            target=worker_main, args=(child, os.getpid(), threads, time.time(), env), daemon=True
        )
        self.process.start()
        child.close()
        self.task: dict[str, Any] | None = None

    def send(self, task: dict[str, Any]) -> None:
        self.task = task
        self.conn.send(task)

    def poll(self) -> dict[str, Any] | None:
        try:
            if not self.conn.poll():
                return None
            outcome = self.conn.recv()
        except (EOFError, OSError):  # the worker died: let its exit status arrive
            self.process.join(timeout=STOP_TIMEOUT_S)
            return None
        self.task = None
        return outcome

    def died(self) -> dict[str, Any]:
        assert self.task is not None
        self.process.join(timeout=STOP_TIMEOUT_S)
        code = self.process.exitcode
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        task, self.task = self.task, None
        self.conn.close()
        return {
            "run_id": task["run_id"],
            "ok": False,
            "status": "failed",
            "values": {},
            "epochs": [],
            "error": f"WorkerDied: the worker process died ({why}) while training",
        }

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                if self.task is None:
                    self.conn.send(None)
            self.process.join(timeout=STOP_TIMEOUT_S if self.task is None else 0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self.conn.close()


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def worker_main(
    conn: Connection,
    parent_pid: int,
    threads: int,
    spawned_at: float | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Worker loop: receive a task, run it, send the outcome; ``None`` or EOF ends it.

    ``env`` (thread counts, CUDA_VISIBLE_DEVICES) is applied before anything touches CUDA.
    The first outcome carries ``worker_startup_s``: process start until torch and the
    training and codec modules were imported (already, when forked from the fork server).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    os.environ.update(env or {})
    import torch

    import pqcompress.codec
    import pqcompress.train.trainer  # noqa: F401
    from pqcompress.sweep.worker import execute_point

    torch.set_num_threads(threads)
    if "numba" in sys.modules:
        with contextlib.suppress(Exception):
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    startup = None if spawned_at is None else time.time() - spawned_at
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        outcome = execute_point(task)
        if startup is not None:
            outcome["worker_startup_s"], startup = startup, None
        conn.send(outcome)


def die_with_parent(driver_pid: int) -> None:
    """Exit when the driver dies: PR_SET_PDEATHSIG on Linux (the parent is the fork server,
    which exits with the driver) plus a watchdog thread that waits on a pidfd of the driver
    (or polls both where pidfds are missing), so a worker does not outlive the driver."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    parent = os.getppid()
    if parent == 1 or not _alive(driver_pid):
        os._exit(1)

    def watch() -> None:
        with contextlib.suppress(Exception):  # Linux >= 5.3: wake the moment the driver exits
            fd = os.pidfd_open(driver_pid)
            select.select([fd], [], [])
            os._exit(1)
        stop = threading.Event()
        while not stop.wait(PARENT_POLL_S):
            if os.getppid() != parent or not _alive(driver_pid):
                os._exit(1)

    threading.Thread(target=watch, name="pqc-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


class InlineExecutor:
    """Runs every task in this process, one after another: no start-up cost at all.

    A point that raises (diverges, bad config, export error) is still recorded as failed and
    the sweep goes on, but nothing isolates a hard crash (segfault, out-of-memory kill): it
    ends the sweep, and a rerun resumes it. Ctrl-C marks the running point interrupted and
    stops. Torch's thread count is restored after each point.
    """

    name = "inline"

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads
        self.startup_s: float | None = None

    def run(self, tasks: list[dict[str, Any]], on_start: OnStart, on_result: OnResult) -> None:
        """Run every task; ``on_start(task)`` before it (False: skip it), ``on_result(outcome)``
        after."""
        import torch

        from pqcompress.sweep.worker import execute_point

        for task in tasks:
            task = dict(task, threads=task.get("threads") or self.threads)
            if on_start(task) is False:  # declined (claimed by another process)
                continue
            saved = torch.get_num_threads()
            try:
                outcome = execute_point(task)
            finally:
                torch.set_num_threads(saved)
            on_result(outcome)
            if outcome["status"] == "interrupted":
                raise KeyboardInterrupt
