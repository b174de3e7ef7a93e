"""How many CPUs this process really has: affinity mask and cgroup (v2 or v1) CPU quota.

A container on Kubernetes sees every core of its node, while its cgroup quota may allow a
fraction of one: torch, numba and ONNX Runtime would each start a thread per core and the
kernel would throttle them. ``cpu_budget()`` reads what the process may use; ``threads_for()``
turns it into a thread count (the quota rounded down, at least 1), overridable with
``PQCOMPRESS_THREADS``. Ground floor: no torch import here.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

THREADS_ENV = "PQCOMPRESS_THREADS"


@dataclass(frozen=True)
class CpuBudget:
    """What limits this process: ``affinity`` CPUs it may run on, the cgroup ``quota`` in CPUs
    (None when unlimited or unknown, with ``quota_source`` naming the file read), and the
    resulting thread count ``threads`` with where it came from (``source``)."""

    affinity: int
    quota: float | None
    quota_source: str | None
    threads: int
    source: str  # "env", "quota", "affinity"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.sched_getaffinity``; cpu_count elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(fstype, hierarchy root, mount point, super options) of each cgroup mount."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((tail[0], fields[3], fields[4], tail[2]))
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _levels(mount: str, root: str, path: str) -> list[Path]:
    """The cgroup directory of ``path`` and each ancestor up to the mount (deepest first)."""
    rel = path
    if root not in ("/", "") and (path == root or path.startswith(root.rstrip("/") + "/")):
        rel = path[len(root) :]
    parts = [p for p in rel.split("/") if p]
    return [Path(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(level: Path) -> float | None:
    text = _read(level / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        q, p = int(quota), int(period or "100000")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _v1_quota(level: Path) -> float | None:
    quota, period = _read(level / "cpu.cfs_quota_us"), _read(level / "cpu.cfs_period_us")
    try:
        q, p = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_quota(
    proc_cgroup: str | None = None, mountinfo: str | None = None
) -> tuple[float | None, str | None]:
    """(CPUs the cgroup quota allows, the file that sets the tightest limit), or (None, None).

    Reads ``/proc/self/cgroup`` and ``/proc/self/mountinfo`` (or the given texts), for cgroup
    v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); the tightest
    limit over the process's cgroup and its ancestors wins, as the kernel enforces it.
    """
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup")) or ""
    if mountinfo is None:
        mountinfo = _read(Path("/proc/self/mountinfo")) or ""
    mounts = _mounts(mountinfo)
    best: tuple[float | None, str | None] = (None, None)
    for line in proc_cgroup.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hier:
            continue
        v2 = controllers == ""
        for fstype, root, mount, opts in mounts:
            if v2 and fstype != "cgroup2":
                continue
            if not v2 and (fstype != "cgroup" or "cpu" not in opts.split(",")):
                continue
            if not v2 and "cpu" not in controllers.split(","):
                continue
            for level in _levels(mount, root, path):
                quota = _v2_quota(level) if v2 else _v1_quota(level)
                if quota is not None and (best[0] is None or quota < best[0]):
                    name = "cpu.max" if v2 else "cpu.cfs_quota_us"
                    best = (quota, str(level / name))
    return best


def cpu_budget(env: dict[str, str] | None = None) -> CpuBudget:
    """The CPUs this process may use and the thread count they call for.

    ``PQCOMPRESS_THREADS=N`` overrides; otherwise the affinity mask, capped by the cgroup
    quota rounded down (a quota of 0.1 or 1.5 CPUs gives 1 thread, 2.0 gives 2).
    """
    env = dict(os.environ) if env is None else env
    affinity = affinity_cpus()
    quota, where = cgroup_quota()
    raw = env.get(THREADS_ENV, "").strip()
    if raw:
        try:
            forced = int(raw)
        except ValueError:
            forced = 0
        if forced >= 1:
            return CpuBudget(affinity, quota, where, forced, "env")
    if quota is not None and math.floor(quota) < affinity:
        return CpuBudget(affinity, quota, where, max(1, math.floor(quota)), "quota")
    return CpuBudget(affinity, quota, where, affinity, "affinity")


def threads_for(requested: int | None = None, env: dict[str, str] | None = None) -> int:
    """``requested`` when given, else ``cpu_budget().threads``."""
    if requested is not None:
        return int(requested)
    return cpu_budget(env).threads


# the widest vector instructions a CPU has, widest first: the same model name ("AMD EPYC")
# covers machines whose training steps differ 4x (bf16 autocast needs avx512_bf16 or AMX)
ISA_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"),
             ("avx2", "AVX2"))  # fmt: skip


def cpu_isa(cpuinfo: str | None = None) -> str | None:
    """The widest vector instruction set of ``/proc/cpuinfo``'s flags (``ISA_FLAGS``), or None
    where the flags are not known."""
    text = _read(Path("/proc/cpuinfo")) if cpuinfo is None else cpuinfo
    for line in (text or "").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return next((name for flag, name in ISA_FLAGS if flag in flags), None)
    return None


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``) with its widest instruction set ("AMD EPYC,
    AVX2"), else what the platform says, else "unknown": every benchmark, serving measurement
    and training run states the machine it ran on."""
    import platform

    text = _read(Path("/proc/cpuinfo")) if cpuinfo is None else cpuinfo
    for line in (text or "").splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            isa = cpu_isa(text)
            return f"{name}, {isa}" if isa else name
    return platform.processor() or "unknown"
