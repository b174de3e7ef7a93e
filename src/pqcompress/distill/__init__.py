"""Knowledge distillation: Hinton's loss, teacher ensembles (mean of logits or majority vote),
cached teacher outputs, and a criterion that plugs the loss into the Trainer or any loop.

The end-to-end study pipeline (teachers, student, pruning, quantization) is
:mod:`pqcompress.studies.distillation`; this package needs only torch and the model registry.
"""

from __future__ import annotations

from pqcompress.distill.cache import TeacherCache, teacher_logits
from pqcompress.distill.criterion import DistillationCriterion
from pqcompress.distill.ensemble import (
    COMBINE,
    TeacherEnsemble,
    combine_logits,
    soft_targets,
)
from pqcompress.distill.loss import DistillationLoss, distillation_loss
from pqcompress.models.freeze import freeze_leading  # a model operation; its home is models/

__all__ = [
    "COMBINE",
    "DistillationCriterion",
    "DistillationLoss",
    "TeacherCache",
    "TeacherEnsemble",
    "combine_logits",
    "distillation_loss",
    "freeze_leading",
    "soft_targets",
    "teacher_logits",
]
