"""Tables I-IV of the distillation study from a distill folder, and the CLI route to them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqcompress.cli.main import main
from pqcompress.report.distillation import build_distillation_report
from pqcompress.report.errors import ReportError


def row(acc: float, nbytes: int, **extra) -> dict:
    return {
        "accuracy": acc,
        "precision": 0.9,
        "recall": 0.8,
        "f1": 0.85,
        "bytes": nbytes,
        "file": f"models/{nbytes}.pqz",
        **extra,
    }


def folder(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    rows = {
        "resnet20": row(0.84, 1_000_000, role="teacher member"),
        "cnn5": row(0.88, 6_000_000, role="teacher member"),
        "teacher": row(0.87, 7_000_000, role="ensemble (mean of resnet20, cnn5)"),
        "student": row(0.80, 100_000),
        "distilled": row(0.85, 100_000),
        "distilled_pruned": row(0.86, 50_000, a=2.0),
        "dynamic_int8": row(0.86, 40_000),
        "float16": {"skipped": "ImportError: no onnx"},
        "int8": row(0.85, 41_000),
        "distilled_pq": row(0.86, 7_000),
    }
    details = {
        "prune_sweep": {
            "choose_on": "val",
            "chosen_a": 2.0,
            "rule": "best",
            "candidates": [
                {"a": 1.0, "accuracy": 0.5, "density": 0.3},
                {"a": 2.0, "accuracy": 0.9, "density": 0.6},
            ],
        }
    }
    (out / "summary.json").write_text(json.dumps(rows))
    (out / "details.json").write_text(json.dumps(details))
    (out / "recipe.yaml").write_text("teachers: [{model: cnn5}]\n")
    return out


def test_four_tables_ours_beside_theirs(tmp_path: Path) -> None:
    paths = build_distillation_report(folder(tmp_path), tmp_path / "rep")
    text = paths[0].read_text()
    for title in ("Table I", "Table II", "Table III", "Table IV"):
        assert title in text
    assert "| distilled_pq | 7000.pqz | 86.00 | 0.850 | 6.84 | 7.14 | 1,000x |" in text
    assert "| distilled | 85.00 | 0.900 | 0.800 | 0.850 | 89.90 |" in text
    assert "| 2 | 90.00 | 40.00 | chosen |" in text
    assert "| float16 | skipped |" in text
    records = json.loads((tmp_path / "rep" / "distill_quantized.json").read_text())["records"]
    assert [r["model"] for r in records] == [
        "distilled_pruned",
        "dynamic_int8",
        "int8",
        "distilled_pq",
    ]


def test_cli_report_recognises_a_distill_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(folder(tmp_path)), "-o", str(tmp_path / "rep")]) == 0
    assert "Tables I-IV" in capsys.readouterr().out


def test_a_summary_without_teacher_is_a_report_error(tmp_path: Path) -> None:
    out = folder(tmp_path)
    (out / "summary.json").write_text(json.dumps({"student": row(0.8, 1)}))
    with pytest.raises(ReportError, match="not a distillation summary"):
        build_distillation_report(out, tmp_path / "rep")
