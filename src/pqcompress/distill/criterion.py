"""DistillationCriterion: the distillation loss as a Trainer criterion (cached or live teachers)."""

from __future__ import annotations

import torch

from pqcompress.distill.ensemble import TeacherEnsemble, check_combine, soft_targets
from pqcompress.distill.loss import DistillationLoss


class DistillationCriterion:
    """``criterion(logits, x, y, extra) -> loss`` for ``Trainer(criterion=...)``.

    ``extra`` holds the batch's cached member logits (B, M, C) (see :mod:`.cache`); when a
    batch has none, ``teacher`` (a :class:`TeacherEnsemble`) is run on the (augmented) batch.
    The ensemble's distribution comes from :func:`soft_targets` (``combine`` mean or vote).
    """

    def __init__(
        self,
        loss: DistillationLoss,
        *,
        combine: str = "mean",
        teacher: TeacherEnsemble | None = None,
    ) -> None:
        self.loss = loss
        self.combine = check_combine(combine)
        self.teacher = teacher

    def __call__(
        self,
        logits: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        extra: torch.Tensor | None,
    ) -> torch.Tensor:
        if extra is None:
            if self.teacher is None:
                raise ValueError(
                    "the batch carries no cached teacher logits and the criterion has no teacher"
                )
            if (p := next(self.teacher.parameters(), None)) is not None and p.device != x.device:
                self.teacher.to(x.device)  # follows the batches to the trainer's device, once
            extra = self.teacher.member_logits(x)
        probs = soft_targets(extra, self.combine, self.loss.temperature)
        loss: torch.Tensor = self.loss(logits, probs, y, teacher_probs=True)
        return loss
