"""DataBundle: the train/val/test splits of one dataset plus its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset


@dataclass
class DataBundle:
    """Splits of one dataset plus what a model file needs to reproduce preprocessing.

    Each split is a map-style Dataset whose items are ``(x: float32 tensor, y: int64 scalar)``.
    ``input_shape`` is the shape of one x (C, H, W) or (C, L). ``preprocessing`` is plain
    JSON-safe data (e.g. ``{"mean": [...], "std": [...], "size": [32, 32], "channels": "RGB"}``).
    ``source`` says where the samples came from (a path, "generated", ...), for reports.
    """

    name: str
    train: Dataset
    val: Dataset | None
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    source: str = ""
