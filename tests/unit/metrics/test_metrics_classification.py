"""Accuracy, confusion matrix, precision/recall/F1 and evaluate_model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pqcompress.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    evaluate_model,
    precision_recall_f1,
)

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDS = [0, 1, 0, 1, 1, 2, 0, 2, 1]


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(PREDS, LABELS)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    assert confusion_matrix(PREDS, LABELS, num_classes=4).shape == (4, 4)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)


def test_precision_recall_f1_by_hand():
    scores = precision_recall_f1(confusion_matrix(PREDS, LABELS))
    # class 0: tp 2, predicted 3, true 3; class 1: tp 2, predicted 4, true 2; class 2: tp 2/2/4
    assert scores["precision"] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert scores["recall"] == pytest.approx([2 / 3, 1.0, 1 / 2])
    assert scores["f1"] == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert scores["support"] == [3, 2, 4]
    assert scores["macro_f1"] == pytest.approx(2 / 3)
    assert scores["macro_precision"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert accuracy(PREDS, LABELS) == pytest.approx(6 / 9)


def test_scores_match_scikit_learn_including_empty_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))  # class 4 never predicted
    ours = precision_recall_f1(confusion_matrix(p, y, num_classes=6))  # class 5 never present
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, p, labels=range(6), zero_division=0, average=None
    )
    assert ours["precision"] == pytest.approx(prec.tolist())
    assert ours["recall"] == pytest.approx(rec.tolist())
    assert ours["f1"] == pytest.approx(f1.tolist())
    assert ours["support"] == sup.tolist()
    assert ours["macro_f1"] == pytest.approx(f1.mean())


def test_classification_report_is_json_safe():
    report = classification_report(torch.tensor(PREDS), torch.tensor(LABELS), 3, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    assert report["class_names"] == ["a", "b", "c"]

    json.dumps(report)


def test_evaluate_model_loss_accuracy_and_predictions():
    x = torch.eye(4)
    y = torch.tensor([0, 1, 2, 2])
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 5]]))
    model.train()
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    out = evaluate_model(model, loader, "cpu", return_predictions=True)
    expected_loss = nn.functional.cross_entropy(model(x), y).item()
    assert out["accuracy"] == 1.0 and out["n"] == 4
    assert out["loss"] == pytest.approx(expected_loss)
    assert out["predictions"].tolist() == [0, 1, 2, 2] and out["labels"].tolist() == y.tolist()
    assert model.training  # mode restored
    assert "predictions" not in evaluate_model(model, loader, "cpu")
