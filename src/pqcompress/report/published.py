"""The studies' published figures, as data files beside the code (``report/published/*.yaml``)
that the reports read: one file per study, each naming the study it comes from (the
citations are in docs/method.md §6). Editing a figure is editing data, not code."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from pqcompress.report.errors import ReportError
from pqcompress.yamlio import parse_yaml_text


@cache
def published(name: str) -> dict[str, Any]:
    """The published figures of study ``name`` (``grid_cnn5_cifar10``, ``modulation_amc1d``,
    ``serving_vgg16``, ``search_vgg16``, ``distillation_pneumonia``)."""
    try:
        text = (resources.files("pqcompress.report") / "published" / f"{name}.yaml").read_text(
            encoding="utf-8"
        )
    except FileNotFoundError:
        raise ReportError(
            f"no published figures named {name!r} in pqcompress/report/published"
        ) from None
    data = parse_yaml_text(text, f"published/{name}.yaml")
    if not isinstance(data, dict):
        raise ReportError(f"published/{name}.yaml must hold a mapping")
    return data
