"""Classification measures (accuracy, confusion matrix, precision/recall/F1) and model evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ArrayLike = torch.Tensor | Sequence[int] | Any  # numpy arrays are accepted too


def _as_labels(values: ArrayLike) -> torch.Tensor:
    return torch.as_tensor(values).reshape(-1).to(torch.int64).cpu()


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of predictions equal to the labels (0.0 for no samples)."""
    p, y = _as_labels(predictions), _as_labels(labels)
    if p.shape != y.shape:
        raise ValueError(f"predictions ({p.numel()}) and labels ({y.numel()}) differ in length")
    return 0.0 if y.numel() == 0 else float((p == y).sum()) / y.numel()


def confusion_matrix(
    predictions: ArrayLike, labels: ArrayLike, num_classes: int | None = None
) -> torch.Tensor:
    """int64 matrix ``C[true, predicted]`` (rows: true class, columns: prediction), as scikit-learn."""
    p, y = _as_labels(predictions), _as_labels(labels)
    if p.shape != y.shape:
        raise ValueError(f"predictions ({p.numel()}) and labels ({y.numel()}) differ in length")
    if num_classes is None:
        num_classes = int(max(p.max(), y.max())) + 1 if y.numel() else 0
    if y.numel() and (min(p.min(), y.min()) < 0 or max(p.max(), y.max()) >= num_classes):
        raise ValueError(f"class indices must lie in 0..{num_classes - 1}")
    flat = torch.bincount(y * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> list[float]:
    """num / den elementwise, 0.0 where den is 0 (scikit-learn's zero_division=0)."""
    out = torch.where(
        den > 0,
        num.double() / den.clamp(min=1).double(),
        torch.zeros_like(num, dtype=torch.float64),
    )
    return [float(v) for v in out]


def precision_recall_f1(confusion: torch.Tensor) -> dict[str, Any]:
    """Per-class and macro precision, recall, F1 and support from a confusion matrix.

    Returns ``{"precision": [...], "recall": [...], "f1": [...], "support": [...],
    "macro_precision", "macro_recall", "macro_f1"}``; a ratio with a zero denominator is 0.0.
    Macro averages are unweighted means over all classes (classes absent from the labels
    count with recall 0, as in scikit-learn with ``labels=range(num_classes)``).
    """
    cm = torch.as_tensor(confusion).to(torch.int64)
    tp = cm.diagonal()
    predicted = cm.sum(dim=0)
    support = cm.sum(dim=1)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = [0.0 if p + r == 0 else 2 * p * r / (p + r) for p, r in zip(precision, recall)]
    k = max(len(f1), 1)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": [int(s) for s in support],
        "macro_precision": sum(precision) / k,
        "macro_recall": sum(recall) / k,
        "macro_f1": sum(f1) / k,
    }


def classification_report(
    predictions: ArrayLike,
    labels: ArrayLike,
    num_classes: int | None = None,
    class_names: Iterable[str] | None = None,
) -> dict[str, Any]:
    """JSON-safe report: accuracy, confusion matrix (list of rows), per-class and macro scores."""
    cm = confusion_matrix(predictions, labels, num_classes)
    report: dict[str, Any] = {"accuracy": accuracy(predictions, labels)}
    report.update(precision_recall_f1(cm))
    report["confusion_matrix"] = cm.tolist()
    if class_names is not None:
        report["class_names"] = list(class_names)
    return report


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    *,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` in eval mode.

    Returns ``{"loss": float, "accuracy": float, "n": int}`` and, with ``return_predictions``,
    ``"predictions"`` and ``"labels"`` (int64 CPU tensors in loader order). The model's
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    preds: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        for batch in loader:  # (x, y) or (x, y, extra)
            x = batch[0].to(device, non_blocking=True)
            y = batch[1].to(device, non_blocking=True)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            pred = logits.argmax(dim=1)
            correct += (pred == y).sum()
            n += y.numel()
            if return_predictions:
                preds.append(pred.cpu())
                targets.append(y.cpu())
    finally:
        model.train(was_training)
    out: dict[str, Any] = {
        "loss": float(loss_sum) / n if n else float("nan"),
        "accuracy": int(correct) / n if n else 0.0,
        "n": n,
    }
    if return_predictions:
        empty = torch.zeros(0, dtype=torch.int64)
        out["predictions"] = torch.cat(preds) if preds else empty
        out["labels"] = torch.cat(targets) if targets else empty
    return out
