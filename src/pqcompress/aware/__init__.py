"""Training-time compression: which tensors get which settings, and the fused compressor."""

from pqcompress.aware.compressor import Compressor, LayerStats
from pqcompress.aware.fused_sgd import PQSGD
from pqcompress.aware.policy import Coverage, Target, coverage, select_targets

__all__ = ["PQSGD", "Compressor", "Coverage", "LayerStats", "Target", "coverage", "select_targets"]
