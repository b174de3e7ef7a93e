"""The studies' published figures are data files the reports read."""

from __future__ import annotations

import pytest

from pqcompress.report import reference, serving
from pqcompress.report.errors import ReportError
from pqcompress.report.published import published


def test_every_study_file_names_its_study_and_loads():
    for name in (
        "grid_cnn5_cifar10",
        "modulation_amc1d",
        "serving_vgg16",
        "search_vgg16",
        "distillation_pneumonia",
    ):
        data = published(name)
        assert isinstance(data["study"], str) and data["study"]


def test_the_tables_come_from_the_files():
    assert reference.acc_density(0.5, 4) == (80.74, 8.5)
    assert reference.BASELINE_ACC == published("grid_cnn5_cifar10")["baseline_acc"] == 87.21
    assert serving.THEIRS_SERVING[250][(8, 1.25)] == (8.71, 2.991, 411, 94)


def test_an_unknown_study_is_one_error():
    with pytest.raises(ReportError, match="no published figures named 'nope'"):
        published("nope")
