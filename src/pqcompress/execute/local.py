"""The "local" backend: N worker processes forked from a warm fork server, dying with the
driver; and the "inline" backend: every item in the driver process, one after another."""

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
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from pqcompress.execute.base import (
    Executor,
    ExecutorError,
    Job,
    OnResult,
    OnStart,
    cpu_count,
)

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
PARENT_POLL_S = 1.0
STOP_TIMEOUT_S = 5.0


def start_forkserver(threads: int | None = None, preload: Sequence[str] = ()) -> None:
    """Start the fork server now (returns at once; it imports ``preload`` in the background).

    Workers are forked from it, so each starts with those modules (torch, training, codec,
    numba) already loaded instead of re-importing them. The server stays single-threaded (it
    runs no torch op; OpenBLAS gets 1 thread there) and never uses OpenMP, so forking from it
    is safe; it exits when this process does. Safe to call more than once: the first call's
    ``preload`` and thread count hold for the life of the server.
    """
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    n = str(threads or cpu_count())
    env = {k: n for k in THREAD_ENV} | {"OPENBLAS_NUM_THREADS": "1"}
    with _environ(env):  # the server's environment is the workers' environment
        forkserver.ensure_running()


class LocalExecutor(Executor):
    """Runs the job in ``workers`` long-lived processes forked from a warm fork server
    (``start_forkserver``); the driver gets every outcome.

    Workers start when first needed and live until ``close()``. Worker ``i`` sees only GPU
    ``gpus[i]`` (CUDA_VISIBLE_DEVICES) when ``gpus`` is given, and uses ``threads`` CPU
    threads (default: cores // workers). Workers ignore Ctrl-C (the driver stops them) and
    exit when the driver dies, even by kill -9. A worker that dies mid-item yields
    ``job.failed(item, why)`` for that item and is replaced.
    """

    name = "local"

    def __init__(
        self,
        job: Job,
        workers: int = 1,
        *,
        threads: int | None = None,
        gpus: list[int] | None = None,
    ) -> None:
        super().__init__(job)
        if workers < 1:
            raise ExecutorError(f"workers={workers} must be >= 1")
        if gpus is not None and len(gpus) < workers:
            raise ExecutorError(f"{workers} workers need {workers} GPUs, got {gpus}")
        self.workers = workers
        self.threads: int = threads or max(1, cpu_count() // workers)
        self.gpus = gpus
        self._slots: list[_Worker | None] = [None] * workers

    def _run(self, queue: deque[tuple[int, Any]], on_start: OnStart, on_result: OnResult) -> None:
        start_forkserver(self.threads, self.job.preload)
        ctx = mp.get_context("forkserver")
        slots = self._slots
        while queue or any(w is not None and w.busy for w in slots):
            for i, w in enumerate(slots):
                while queue and (w is None or not w.busy):
                    index, item = queue.popleft()
                    if on_start(index, item) is False:
                        continue  # declined (e.g. claimed elsewhere): next one
                    if w is None:
                        w = slots[i] = _Worker(ctx, self.job, self.threads, self._gpu(i))
                    w.send(index, item)
            busy = [w for w in slots if w is not None and w.busy]
            if not busy:
                continue
            wait([x for w in busy for x in (w.conn, w.process.sentinel)])
            for i, w in enumerate(slots):
                if w is None or not w.busy:
                    continue
                got = w.poll()
                if got is not None:
                    index, outcome, startup = got
                    if self.startup_s is None and startup is not None:
                        self.startup_s = startup
                elif not w.process.is_alive():
                    index, item, why = w.died()
                    slots[i] = None
                    outcome = self.job.failed(item, why)
                else:
                    continue
                on_result(index, outcome)

    def close(self) -> None:
        for i, w in enumerate(self._slots):
            if w is not None:
                w.stop()
                self._slots[i] = None

    def _gpu(self, i: int) -> int | None:
        return None if self.gpus is None else self.gpus[i]


class _Worker:
    """One worker process and the driver's end of its pipe."""

    def __init__(self, ctx: Any, job: Job, threads: int, gpu: int | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        env = {k: str(threads) for k in THREAD_ENV}
        if gpu is not None:  # index into the devices this process may see
            visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
            env["CUDA_VISIBLE_DEVICES"] = visible[gpu] if gpu < len(visible) else str(gpu)
        self.process = ctx.Process(
            target=worker_main,
            args=(child, job, os.getpid(), threads, time.time(), env),
            daemon=True,
        )
        self.process.start()
        child.close()
        self.task: tuple[int, Any] | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None

    def send(self, index: int, item: Any) -> None:
        self.task = (index, item)
        self.conn.send(item)

    def poll(self) -> tuple[int, Any, float | None] | None:
        try:
            if not self.conn.poll():
                return None
            outcome, startup = self.conn.recv()
        except (EOFError, OSError):  # the worker died: let its exit status arrive
            self.process.join(timeout=STOP_TIMEOUT_S)
            return None
        assert self.task is not None
        index, self.task = self.task[0], None
        return index, outcome, startup

    def died(self) -> tuple[int, Any, str]:
        assert self.task is not None
        self.process.join(timeout=STOP_TIMEOUT_S)
        code = self.process.exitcode
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        (index, item), self.task = self.task, None
        self.conn.close()
        return index, item, f"the worker process died ({why})"

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
    job: Job,
    parent_pid: int,
    threads: int,
    spawned_at: float | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Worker loop: ``job.setup`` once, then receive an item, run ``job.fn``, send the
    outcome; ``None`` or EOF ends it.

    ``env`` (thread counts, CUDA_VISIBLE_DEVICES) is applied before anything touches CUDA.
    The first outcome carries the start-up time: process start until the job's setup was
    done (its modules already imported, when forked from the fork server).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    os.environ.update(env or {})
    _set_threads(threads)
    if job.setup is not None:
        job.setup(*job.setup_args)
    startup = None if spawned_at is None else time.time() - spawned_at
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        conn.send((job.fn(item), startup))
        startup = None


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if "numba" in sys.modules:
        with contextlib.suppress(Exception):
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]


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


class InlineExecutor(Executor):
    """Runs every item in this process, one after another: no start-up cost at all.

    ``job.setup`` runs once, before the first item. Nothing isolates a hard crash
    (segfault, out-of-memory kill): it ends the caller. Torch's thread count is restored
    after each item.
    """

    name = "inline"

    def __init__(self, job: Job, *, threads: int | None = None) -> None:
        super().__init__(job)
        self.threads = threads
        self._ready = False

    def _run(self, queue: deque[tuple[int, Any]], on_start: OnStart, on_result: OnResult) -> None:
        import torch

        for index, item in queue:
            if on_start(index, item) is False:
                continue  # declined (e.g. claimed by another process)
            saved = torch.get_num_threads()
            try:
                if self.threads:
                    torch.set_num_threads(self.threads)
                if not self._ready:
                    if self.job.setup is not None:
                        self.job.setup(*self.job.setup_args)
                    self._ready = True
                outcome = self.job.fn(item)
            finally:
                torch.set_num_threads(saved)
            on_result(index, outcome)
