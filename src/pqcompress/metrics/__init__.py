"""Measures: classification scores, sparsity/density and the Efficiency Score."""

from pqcompress.metrics.classification import (
    accuracy,
    classification_report,
    confusion_matrix,
    evaluate_model,
    precision_recall_f1,
)
from pqcompress.metrics.efficiency import compression_ratio, efficiency_score
from pqcompress.metrics.sparsity import (
    compressible_weights,
    model_density,
    model_sparsity,
    tensor_density,
)

__all__ = [
    "accuracy",
    "classification_report",
    "compressible_weights",
    "compression_ratio",
    "confusion_matrix",
    "efficiency_score",
    "evaluate_model",
    "model_density",
    "model_sparsity",
    "precision_recall_f1",
    "tensor_density",
]
