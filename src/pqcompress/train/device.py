"""Device and CPU-thread selection for training."""

from __future__ import annotations

import torch

from pqcompress.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """ "auto" = CUDA when available, else CPU; otherwise any torch device string ("cpu", "cuda:1")."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"train.device={name!r} is not a device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def apply_threads(threads: int | None) -> int:
    """Size torch's intra-op pool and numba's pool (process-wide) and return the count.

    ``threads`` when given, else the CPUs the process may use (``pqcompress.cpus``: affinity
    mask capped by the cgroup CPU quota; ``PQCOMPRESS_THREADS`` overrides), so a training in a
    CPU-limited container does not start a thread per core of the node.
    """
    from pqcompress.cpus import threads_for

    if threads is not None and threads < 1:
        raise ConfigError(f"train.threads={threads} must be >= 1 or null")
    n = threads_for(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    size_numba(n)
    return n


def size_numba(n: int) -> None:
    """numba's thread pool: set now if numba is loaded, else through NUMBA_NUM_THREADS (read at
    its import), never above what numba allows (NUMBA_NUM_THREADS caps set_num_threads)."""
    import os
    import sys

    numba = sys.modules.get("numba")
    if numba is None:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(n))
        return
    limit = int(numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(max(1, min(n, limit)))
