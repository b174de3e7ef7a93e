"""Training-time compression: which tensors get which settings, and the fused compressor."""

from pqcompress.aware.compressor import Compressor, LayerStats
from pqcompress.aware.fused_optim import PQSGD, PQAdam, PQAdamW, fuse
from pqcompress.aware.policy import Coverage, Target, coverage, select_targets

__all__ = [
    "PQSGD",
    "Compressor",
    "Coverage",
    "LayerStats",
    "PQAdam",
    "PQAdamW",
    "Target",
    "coverage",
    "fuse",
    "select_targets",
]
