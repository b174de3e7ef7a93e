"""Memory per request, bounded by construction: every byte a request will hold (its body as it
streams in, then what decoding it costs) is reserved from one per-process budget before it is
allocated; a request that would pass the budget is refused (413 alone over it, 503 while others
hold it) instead of growing the process toward its container's memory limit.

The budget is ``request_memory_bytes`` when set, else derived from the process's memory limit
(``memory_limit_bytes``, the pod's ``limits.memory`` through the Downward API, or the cgroup's
``memory.max``): a share of what is left above the resident size once the model is loaded and
warm. Without any limit it is :data:`UNLIMITED_DEFAULT_BYTES`.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from pathlib import Path

from pqcompress.serve.errors import RequestError

MiB = 1 << 20
UNLIMITED_DEFAULT_BYTES = 256 * MiB  # no memory limit known: bodies and decoding at once
LIMIT_SHARE = 0.5  # of (limit - resident size when ready): the rest covers inference peaks
MIN_BUDGET_BYTES = 4 * MiB
_CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def cgroup_memory_limit() -> int | None:
    """The cgroup's memory limit in bytes (v2 ``memory.max``, v1 ``limit_in_bytes``), or None
    when there is none (``max``, or a v1 value near 2**63)."""
    for name in _CGROUP_FILES:
        with contextlib.suppress(OSError, ValueError):
            text = Path(name).read_text().strip()
            if text == "max":
                return None
            value = int(text)
            return value if value < 1 << 60 else None
    return None


def resident_bytes() -> int:
    """This process's resident set size now (0 where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def derive_budget(limit: int | None, resident: int) -> tuple[int, str]:
    """The request budget for a memory ``limit`` (None: unknown) and the resident size when
    ready, with a note of where it came from."""
    if limit is None:
        return UNLIMITED_DEFAULT_BYTES, "no memory limit known: default"
    spare = max(0, limit - resident)
    budget = max(MIN_BUDGET_BYTES, int(spare * LIMIT_SHARE))
    return budget, (
        f"{LIMIT_SHARE:g} x (limit {limit / MiB:.0f} MiB - resident {resident / MiB:.0f} MiB)"
    )


class MemoryBudget:
    """Bytes that requests may hold at once; thread-safe (reserved on the event loop, released
    from worker threads too)."""

    def __init__(self, total: int, source: str = "") -> None:
        self.total = int(total)
        self.source = source
        self.used = 0
        self.peak = 0
        self._lock = threading.Lock()

    def try_reserve(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.total:
                return False
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used = max(0, self.used - n)


class Reservation:
    """What one request holds of the budget; :meth:`add` before each allocation, :meth:`close`
    when the request ends (then freed memory is handed back to the OS where possible)."""

    def __init__(self, budget: MemoryBudget | None) -> None:
        self.budget = budget
        self.held = 0

    def add(self, n: int, what: str) -> None:
        """Reserve ``n`` more bytes for ``what``; RequestError 413 when the request alone would
        pass the whole budget, 503 while other requests hold too much of it."""
        n = int(max(0, n))
        if self.budget is None or n == 0:
            return
        need = self.held + n
        if need > self.budget.total:
            raise RequestError(
                413,
                "too_much_memory",
                f"{what} would need {need / MiB:.1f} MiB, over the service's per-request memory "
                f"budget of {self.budget.total / MiB:.1f} MiB; send a smaller batch (or .npy)",
            )
        if not self.budget.try_reserve(n):
            raise RequestError(
                503,
                "memory_busy",
                f"{what} needs {n / MiB:.1f} MiB and other requests hold the service's memory "
                "budget now; retry shortly",
            )
        self.held += n

    def close(self) -> None:
        if self.budget is not None and self.held:
            self.budget.release(self.held)
            if self.held >= MiB:
                trim_heap()
        self.held = 0


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere), so the
    resident size falls back after a large request instead of staying at its peak."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        _LIBC.append(ctypes.CDLL("libc.so.6"))
    return _LIBC[0]
