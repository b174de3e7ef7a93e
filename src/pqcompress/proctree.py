"""CPU time and resident memory of a process and its descendants, read from Linux ``/proc``.

One home for what the service's metrics, the load test and the benchmarks read about a
process: :func:`tree_usage` sums user + system CPU seconds and resident bytes over the live
processes of a tree (a uvicorn supervisor and its workers). Off Linux, :func:`available` is
False and the readers return None.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def available() -> bool:
    return (PROC / "self" / "stat").is_file()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads' children), [] when it is gone."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def process_tree(root: int, *, limit: int = 4096) -> list[int]:
    """``root`` and its descendants (at most ``limit`` processes), [] when root is gone."""
    if _stat_fields(root) is None:
        return []
    seen, todo = [root], [root]
    while todo and len(seen) < limit:
        for child in children(todo.pop()):
            if child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one live process."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int | None:
    """Resident bytes of one live process (``/proc/PID/statm``)."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes(pid: int) -> int | None:
    """The peak resident bytes of one process so far (VmHWM)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_usage(root: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) summed over the live tree of ``root``; None when gone."""
    pids = process_tree(root)
    if not pids:
        return None
    cpu, rss = 0.0, 0
    for pid in pids:
        c, r = cpu_seconds(pid), rss_bytes(pid)
        cpu += c or 0.0
        rss += r or 0
    return cpu, rss


def tree_peak_rss(root: int) -> int | None:
    """The sum of each live process's own peak resident bytes (VmHWM) in the tree of ``root``:
    the service's lifetime peak, loading included (exact for one process; for several, an
    upper bound, as their peaks need not coincide). None when the tree is gone."""
    pids = process_tree(root)
    if not pids:
        return None
    return sum(peak_rss_bytes(pid) or 0 for pid in pids)
