"""Hinton's distillation loss: soft (teacher vs student at temperature T) plus hard cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pqcompress.config import check_distill_settings


def distillation_loss(
    student_logits: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    temperature: float = 4.0,
    soft_weight: float = 0.9,
    hard_weight: float = 0.1,
    teacher_probs: bool = False,
    t_squared: bool = True,
) -> torch.Tensor:
    """``soft_weight * T^2 * KL(p_T || q_T) + hard_weight * CE(student, targets)``, batch mean.

    ``p_T = softmax(teacher / T)`` (or ``teacher`` itself when ``teacher_probs``, e.g. the vote
    fractions of an ensemble), ``q_T = softmax(student_logits / T)``. The ``T^2`` factor
    (Hinton et al. 2015; the Keras distiller the study followed) keeps the soft gradients'
    scale independent of T; ``t_squared=False`` drops it. ``targets`` may be None when
    ``hard_weight`` is 0.
    """
    check_distill_settings(temperature, soft_weight, hard_weight)
    if student_logits.ndim != 2:
        raise ValueError(
            f"student_logits must be (batch, classes), got {tuple(student_logits.shape)}"
        )
    if teacher.shape != student_logits.shape:
        raise ValueError(
            f"teacher {tuple(teacher.shape)} and student {tuple(student_logits.shape)} differ"
        )
    loss = student_logits.new_zeros(())
    if soft_weight:
        log_q = F.log_softmax(student_logits / temperature, dim=1)
        t = teacher.detach().to(student_logits.dtype)
        p = t if teacher_probs else F.softmax(t / temperature, dim=1)
        kl = (torch.xlogy(p, p) - p * log_q).sum(dim=1).mean()
        loss = loss + soft_weight * (temperature**2 if t_squared else 1.0) * kl
    if hard_weight:
        if targets is None:
            raise ValueError("hard_weight > 0 needs targets")
        loss = loss + hard_weight * F.cross_entropy(student_logits, targets)
    return loss


class DistillationLoss(nn.Module):
    """:func:`distillation_loss` with fixed settings: ``loss(student_logits, teacher, targets)``."""

    def __init__(
        self,
        temperature: float = 4.0,
        soft_weight: float = 0.9,
        hard_weight: float = 0.1,
        *,
        teacher_probs: bool = False,
        t_squared: bool = True,
    ) -> None:
        super().__init__()
        check_distill_settings(temperature, soft_weight, hard_weight)
        self.temperature = float(temperature)
        self.soft_weight = float(soft_weight)
        self.hard_weight = float(hard_weight)
        self.teacher_probs = teacher_probs
        self.t_squared = t_squared

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher: torch.Tensor,
        targets: torch.Tensor | None,
        *,
        teacher_probs: bool | None = None,
    ) -> torch.Tensor:
        """``teacher_probs`` overrides the module's setting for this call (None: keep it)."""
        return distillation_loss(
            student_logits,
            teacher,
            targets,
            temperature=self.temperature,
            soft_weight=self.soft_weight,
            hard_weight=self.hard_weight,
            teacher_probs=self.teacher_probs if teacher_probs is None else teacher_probs,
            t_squared=self.t_squared,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, soft_weight={self.soft_weight}, "
            f"hard_weight={self.hard_weight}, t_squared={self.t_squared}"
        )
