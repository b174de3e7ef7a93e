"""Training on several processes with torch.distributed (DistributedDataParallel under torchrun).

``torchrun --nproc_per_node N -m pqcompress train ...`` (or ``pqcompress train --nproc N``)
starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`from_env` joins
the process group (gloo on CPU, nccl on CUDA) and the Trainer then:

- shards every epoch's shuffled order over the ranks (each rank takes every N-th sample of
  the same permutation, trimmed so all ranks run the same number of steps) with the global
  ``batch_size`` the config states split evenly over the ranks;
- wraps the model in ``DistributedDataParallel`` (gradients averaged, BatchNorm buffers
  broadcast from rank 0), so every rank's optimizer step and P->Q pass see the same
  weights; the compressor's stochastic rounding draws from a generator every rank seeds
  the same way, so the compressed weights stay identical on every rank;
- evaluates on a shard per rank and sums the counts over ranks, so every rank sees the same
  metrics (the best epoch and early stopping agree);
- writes from rank 0 only: config, metrics, checkpoints, best.pt, result.json; on resume
  every rank reads the same checkpoint.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from pqcompress.errors import ConfigError

# a rank that stops answering (killed) makes the others fail after this long instead of
# waiting for torch's default 30 minutes; torchrun also tears the group down when a worker dies
COLLECTIVE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group."""

    rank: int
    world: int
    local_rank: int
    local_world: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """``values`` summed element-wise over every rank (float64)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset); ConfigError when it is not a number."""
    raw = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        world = int(raw)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={raw!r} is not a number of processes") from None
    if world < 1:
        raise ConfigError(f"WORLD_SIZE={world} must be >= 1")
    return world


def from_env(device: torch.device) -> DistContext | None:
    """Join the process group torchrun describes (None when this is one process)."""
    world = world_size_from_env()
    if world == 1:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; train with one process")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return DistContext(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), local_world
    )


def per_rank_batch(batch_size: int, ctx: DistContext | int | None) -> int:
    """The batch each rank runs so that the ranks together run ``batch_size`` (``ctx``: the
    group, or a number of processes)."""
    world = ctx if isinstance(ctx, int) else (ctx.world if ctx is not None else 1)
    if batch_size % world:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must divide evenly over "
            f"{world} processes (e.g. {batch_size - batch_size % world or world})"
        )
    return batch_size // world


_LOST = ("connection closed", "connection reset", "broken pipe", "gloo", "nccl", "timed out")


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another process of the group died or
    stopped answering (torch.distributed's errors, or gloo's and nccl's RuntimeErrors)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _LOST)


def describe(exc: BaseException) -> str:
    """The first line of ``exc``'s message, shortened."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # gloo's "[source/file.cc:553] " prefix
    return first.split(". ")[0][:160]


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
