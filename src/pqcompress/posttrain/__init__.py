"""Post-training compression: pruning (L1, random, std), torch int8/fp16 quantization, and the
search study's design variables (docs/method.md §7). The int8 deployment path is ONNX Runtime
(:mod:`pqcompress.export`); see docs/export.md."""

from __future__ import annotations

from pqcompress.posttrain.config import PostTrainConfig, apply_posttrain, chosen_layers
from pqcompress.posttrain.prune import (
    prune_l1,
    prune_random,
    prune_std,
    select_tensors,
    sparsity,
)
from pqcompress.posttrain.quantize import (
    Float16Model,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_float16,
)

__all__ = [
    "Float16Model",
    "PostTrainConfig",
    "apply_posttrain",
    "chosen_layers",
    "prune_l1",
    "prune_random",
    "prune_std",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "select_tensors",
    "sparsity",
    "to_float16",
]
