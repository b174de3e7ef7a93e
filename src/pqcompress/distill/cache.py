"""Teacher outputs computed once per training sample and kept (in memory and on disk).

The teachers are fixed while the student learns, so their logits on the training set are
computed once, un-augmented, and looked up per batch: distillation then costs about what
training the student alone costs. (The student still sees augmented images; the soft target
of a sample is the teachers' view of its clean image. ``DistillationCriterion`` with a
teacher and no cache runs the teachers on every augmented batch instead.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from pqcompress.atomic import atomic_write
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.batches import evaluation_view
from pqcompress.data.loader import make_loader
from pqcompress.distill.ensemble import TeacherEnsemble
from pqcompress.errors import CheckpointError

CACHE_VERSION = 1


@torch.no_grad()
def teacher_logits(
    ensemble: TeacherEnsemble, dataset: ArrayDataset, *, batch_size: int = 256
) -> torch.Tensor:
    """float32 (N, M, C): every member's logits for each *storage* row of ``dataset``.

    Rows of the dataset's view are filled (evaluated un-augmented, in eval mode); rows outside
    the view (another split of the same storage) hold NaN. Use the result with
    ``dataset.with_extra("teacher", logits).with_target_extra("teacher")``.
    """
    clean = evaluation_view(dataset)
    out: torch.Tensor | None = None
    start = 0
    rows = clean.rows
    for x, _ in make_loader(clean, batch_size, shuffle=False):
        z = ensemble.member_logits(x)
        if out is None:
            out = torch.full((dataset.x.shape[0], *z.shape[1:]), float("nan"))
        out[rows[start : start + z.shape[0]]] = z.cpu()
        start += z.shape[0]
    if out is None:
        raise ValueError("the dataset is empty: no teacher logits to compute")
    return out


def fingerprint(ensemble: TeacherEnsemble, dataset: ArrayDataset) -> str:
    """sha256 over the members' names and weights, and the dataset's samples and rows."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name, tensor in ensemble.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    h.update(dataset.x.contiguous().view(torch.uint8).numpy().tobytes())
    h.update(dataset.rows.numpy().tobytes())
    h.update(str(dataset.normalization).encode())
    return h.hexdigest()


class TeacherCache:
    """``get(ensemble, dataset)``: the logits of :func:`teacher_logits`, read from ``path``
    when it holds them for the same teachers and samples, else computed and written there
    (atomically). ``path=None`` keeps them in memory only. ``computed`` counts computations."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.computed = 0
        self._memory: dict[str, torch.Tensor] = {}

    def get(
        self, ensemble: TeacherEnsemble, dataset: ArrayDataset, *, batch_size: int = 256
    ) -> torch.Tensor:
        key = fingerprint(ensemble, dataset)
        if key in self._memory:
            return self._memory[key]
        logits = self._read(key, ensemble, dataset)
        if logits is None:
            logits = teacher_logits(ensemble, dataset, batch_size=batch_size)
            self.computed += 1
            self._write(key, ensemble, logits)
        self._memory[key] = logits
        return logits

    def _read(
        self, key: str, ensemble: TeacherEnsemble, dataset: ArrayDataset
    ) -> torch.Tensor | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            data: Any = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged cache is recomputed, never trusted
            raise CheckpointError(
                f"teacher cache {self.path} cannot be read: it is damaged or not a teacher "
                f"cache ({type(exc).__name__}); delete it to recompute"
            ) from None
        if not isinstance(data, dict) or data.get("key") != key:
            return None  # other teachers or samples: recompute
        logits = data.get("logits")
        shape = (dataset.x.shape[0], len(ensemble.names))
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape[:2]) != shape:
            return None
        return logits.float()

    def _write(self, key: str, ensemble: TeacherEnsemble, logits: torch.Tensor) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "members": ensemble.names, "logits": logits}
        atomic_write(self.path, lambda fh: torch.save(payload, fh))
