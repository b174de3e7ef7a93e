"""DataBundle: the train/val/test splits of one dataset plus its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from pqcompress.inputspec import InputSpec, from_input_shape

TOKENS_INPUT = "tokens"


@dataclass
class DataBundle:
    """Splits of one dataset plus what a model file needs to reproduce preprocessing.

    Each split is a map-style Dataset whose items are ``(x, y: int64 scalar)``, x a float32
    tensor, or integer token ids when ``input_dtype`` says so.
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
    input_dtype: str = "float32"  # "int64" for token ids (e.g. modulation-tokens)

    def input_specs(self) -> tuple[InputSpec, ...]:
        """What a model trained on this data takes: one float input ``input`` of
        ``input_shape``, or token ids ``tokens`` (int64, ids below the vocabulary size the
        preprocessing records)."""
        if self.input_dtype == "float32":
            return (from_input_shape(self.input_shape),)
        vocab = self.preprocessing.get("vocab_size")
        return (
            InputSpec(
                TOKENS_INPUT,
                self.input_dtype,
                ("batch", *[int(d) for d in self.input_shape]),
                low=0,
                high=int(vocab) if vocab else None,
            ),
        )
