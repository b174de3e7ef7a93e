"""The distillation recipe (``pqcompress distill RECIPE.yaml``): typed, strict, YAML round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pqcompress.config import (
    CompressionConfig,
    DataConfig,
    TrainConfig,
    check_distill_settings,
    from_dict,
    load_yaml,
    to_dict,
)
from pqcompress.distill.ensemble import COMBINE
from pqcompress.errors import ConfigError

QUANTIZATIONS = ("dynamic_int8", "float16", "int8")
# the study's protocol (docs/method.md §5): Adam lr 1e-3 halved every 3 epochs, batch 32, L2 1.25e-4
STUDY_TRAIN = {
    "epochs": 25,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 0.001,
    "weight_decay": 0.000125,
    "lr_schedule": "step",
    "lr_step_size": 3,
    "lr_gamma": 0.5,
    "best_on": "val",  # best.pt by validation accuracy: test accuracy stays a clean estimate
}
STUDY_TEACHER_TRAIN = {**STUDY_TRAIN, "epochs": 50}
RESERVED_NAMES = ("teacher", "student", "distilled", "distilled_pruned", "distilled_pq")


@dataclass(frozen=True)
class TeacherSpec:
    """One ensemble member: trained here (``model``), or loaded (``run`` dir or ``pqz`` file).

    ``train``: overrides of the recipe's ``teacher_train`` for this member. ``torchvision``:
    an ImageNet architecture (resnet18, alexnet, vgg19, densenet121, googlenet), with
    ``pretrained`` weights from the local torch hub cache only (never downloaded) and
    ``freeze`` leading layers frozen (a count, or a fraction in (0, 1)).
    """

    model: str | None = None
    run: str | None = None
    pqz: str | None = None
    torchvision: str | None = None
    name: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    freeze: float = 0

    def __post_init__(self) -> None:
        given = [k for k in ("model", "run", "pqz", "torchvision") if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(
                "a teacher needs exactly one of model (train it here), run (a trained run "
                f"directory), pqz (a .pqz file) or torchvision (an ImageNet architecture); got {given or 'none'}"
            )
        if (self.pretrained or self.freeze) and not self.torchvision:
            raise ConfigError("pretrained and freeze apply to torchvision teachers only")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.model or self.torchvision:
            return str(self.model or self.torchvision)
        return Path(str(self.run or self.pqz)).stem

    @property
    def trained_here(self) -> bool:
        return bool(self.model or self.torchvision)


@dataclass(frozen=True)
class StudentSpec:
    model: str = "student_cnn"
    model_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DistillSettings:
    """Hinton's loss; ``cache``: teacher logits computed once per training image (un-augmented)
    instead of running the teachers on every augmented batch."""

    temperature: float = 4.0
    soft_weight: float = 0.9
    hard_weight: float = 0.1
    t_squared: bool = True
    cache: bool = True

    def __post_init__(self) -> None:
        check_distill_settings(self.temperature, self.soft_weight, self.hard_weight)


@dataclass(frozen=True)
class PruneSettings:
    """Post-training std pruning of the distilled student: threshold = std(W) / a per tensor.

    The choice rule: the a with the best ``choose_on`` accuracy; among those within
    ``tolerance`` points of it, the one that prunes most.
    """

    a: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 15.0)
    choose_on: Literal["val", "test"] = "val"
    tolerance: float = 0.0
    layers: Literal["linear", "conv", "both"] = "both"

    def __post_init__(self) -> None:
        if not self.a or any(not (v > 0 and v < float("inf")) for v in self.a):
            raise ConfigError(f"prune.a={list(self.a)} must be a non-empty list of numbers > 0")
        if not 0 <= self.tolerance < 100:
            raise ConfigError(f"prune.tolerance={self.tolerance} must be in [0, 100) points")


@dataclass(frozen=True)
class PQSettings:
    """Beyond the study: distillation with P->Q after every step, one run per ``compression``
    entry; ``distilled_pq`` is the smallest .pqz whose ``choose_on`` accuracy is within
    ``tolerance`` points of the distilled student's."""

    choose_on: Literal["val", "test"] = "val"
    tolerance: float = 0.0


@dataclass(frozen=True)
class DistillRecipe:
    dataset: str = "pneumonia"
    data: DataConfig = field(default_factory=DataConfig)
    teachers: tuple[TeacherSpec, ...] = ()
    combine: Literal["mean", "vote"] = "mean"
    student: StudentSpec = field(default_factory=StudentSpec)
    distill: DistillSettings = field(default_factory=DistillSettings)
    train: dict[str, Any] = field(default_factory=dict)
    teacher_train: dict[str, Any] = field(default_factory=dict)
    prune: PruneSettings = field(default_factory=PruneSettings)
    quantize: tuple[str, ...] = QUANTIZATIONS
    compression: tuple[CompressionConfig, ...] = ()
    pq: PQSettings = field(default_factory=PQSettings)
    seed: int = 0
    version: int = 1

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ConfigError("teachers: list at least one teacher")
        if self.combine not in COMBINE:
            raise ConfigError(f"combine={self.combine!r} is not accepted; use mean or vote")
        labels = [t.label for t in self.teachers]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"teacher names must differ (set name:), repeated: {dupes}")
        clash = sorted(set(labels) & set(RESERVED_NAMES + QUANTIZATIONS))
        if clash or any("/" in x or not x for x in labels):
            raise ConfigError(f"teacher names {clash or labels} clash with row names or hold '/'")
        bad = [q for q in self.quantize if q not in QUANTIZATIONS]
        if bad:
            raise ConfigError(
                f"quantize: {bad} not accepted; use any of {', '.join(QUANTIZATIONS)}"
            )
        self.student_train_config()
        for t in self.teachers:
            self.teacher_train_config(t)

    def student_train_config(self) -> TrainConfig:
        """The student's TrainConfig: the study's protocol, updated by ``train:``, seeded."""
        return from_dict(TrainConfig, {**STUDY_TRAIN, "seed": self.seed, **self.train}, "train")

    def teacher_train_config(self, teacher: TeacherSpec) -> TrainConfig:
        merged = {**STUDY_TEACHER_TRAIN, "seed": self.seed, **self.teacher_train, **teacher.train}
        return from_dict(TrainConfig, merged, f"teachers[{teacher.label}].train")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_dict(self)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> DistillRecipe:
        if isinstance(data, dict) and isinstance(data.get("compression"), dict):
            data = {**data, "compression": [data["compression"]]}
        return from_dict(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DistillRecipe:
        from pqcompress.yamlio import read_yaml_file

        return cls.from_dict(read_yaml_file(path, "distillation recipe") or {})


__all__ = [
    "QUANTIZATIONS",
    "DistillRecipe",
    "DistillSettings",
    "PQSettings",
    "PruneSettings",
    "StudentSpec",
    "TeacherSpec",
    "load_yaml",
]
