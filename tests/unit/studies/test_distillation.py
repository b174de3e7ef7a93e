"""The distillation study end to end on tiny real data: every row, reuse on rerun, the rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqcompress.errors import ConfigError
from pqcompress.studies.distill_recipe import DistillRecipe
from pqcompress.studies.distillation import (
    ROW_KEYS,
    DistillationError,
    choose_prune,
    choose_smallest,
    run_distillation,
)
from pqcompress.testing.tiny import write_tiny_pneumonia


def recipe(root: Path, **changes) -> DistillRecipe:
    data = {
        "dataset": "pneumonia",
        "data": {"root": str(root)},
        "teachers": [
            {"model": "student_cnn", "name": "small"},
            {"model": "student_cnn", "name": "wide", "model_args": {"width": 2.0}},
        ],
        "train": {"epochs": 2, "batch_size": 16},
        "teacher_train": {"epochs": 2, "batch_size": 16},
        "prune": {"a": [0.5, 1, 4]},
        "compression": [{"alpha": 0.5, "bits": 4}, {"alpha": 1.0, "bits": 3}],
        "pq": {"tolerance": 100.0},
    }
    data.update(changes)
    return DistillRecipe.from_dict(data)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, DistillRecipe]:
    pytest.importorskip("onnxruntime")  # the int8 rows run on ONNX Runtime (a dev dependency)
    base = tmp_path_factory.mktemp("distill")
    write_tiny_pneumonia(base / "data")
    r = recipe(base / "data")
    rows = run_distillation(r, base / "out", progress=False)
    return base / "out", rows, r


def test_every_row_is_written_with_its_measures_and_file(study) -> None:
    out, rows, _ = study
    expected = {
        "teacher",
        "teacher_vote",
        "small",
        "wide",
        "student",
        "distilled",
        "distilled_pruned",
        "dynamic_int8",
        "float16",
        "int8",
        "distilled_pq",
    }
    assert expected <= set(rows)
    assert json.loads((out / "summary.json").read_text()) == rows
    for key in expected - {"teacher", "teacher_vote"}:
        row = rows[key]
        assert set(ROW_KEYS) <= set(row), key
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["f1"] <= 1.0
        assert (out / row["file"]).stat().st_size == row["bytes"], key
    assert rows["teacher"]["bytes"] == rows["small"]["bytes"] + rows["wide"]["bytes"]
    assert rows["distilled_pruned"]["ratio_to_teacher"] == pytest.approx(
        rows["teacher"]["bytes"] / rows["distilled_pruned"]["bytes"]
    )
    assert rows["dynamic_int8"]["file"].endswith(".onnx") and rows["int8"]["file"].endswith(".onnx")
    assert rows["float16"]["bytes"] < rows["distilled_pruned"]["bytes"]


def test_learns_the_tiny_task(study) -> None:
    _, rows, _ = study
    assert rows["teacher"]["accuracy"] > 0.8  # the bright square is easy
    assert rows["distilled"]["accuracy"] > 0.6


def test_pruning_follows_the_stated_rule(study) -> None:
    out, rows, _ = study
    sweep = json.loads((out / "details.json").read_text())["prune_sweep"]
    assert [c["a"] for c in sweep["candidates"]] == [0.5, 1.0, 4.0]
    assert (
        choose_prune(sweep["candidates"])["a"] == sweep["chosen_a"] == rows["distilled_pruned"]["a"]
    )
    assert rows["distilled_pruned"]["density"] < 1.0


def test_pq_row_is_the_smallest_candidate_within_tolerance(study) -> None:
    _, rows, _ = study
    candidates = [v for k, v in rows.items() if k.startswith("distilled_pq/")]
    assert len(candidates) == 2
    assert rows["distilled_pq"]["bytes"] == min(c["bytes"] for c in candidates)
    assert rows["distilled_pq"]["compression"]["bits"] in (3, 4)


def test_rerun_reuses_every_stage(study) -> None:
    out, rows, r = study
    best = out / "distilled" / "best.pt"
    before = best.stat().st_mtime_ns
    again = run_distillation(r, out, progress=False)
    assert best.stat().st_mtime_ns == before
    details = json.loads((out / "details.json").read_text())
    assert details["teacher_cache"]["computed_now"] == 0
    for key in ("teacher", "distilled", "distilled_pruned", "distilled_pq"):
        assert again[key]["accuracy"] == rows[key]["accuracy"], key


def test_another_recipe_in_the_same_folder_is_refused(study) -> None:
    out, _, r = study
    other = DistillRecipe.from_dict({**r.to_dict(), "combine": "vote"})
    with pytest.raises(DistillationError, match=r"another recipe \(differs in combine\)"):
        run_distillation(other, out, progress=False)


def test_choose_prune_prefers_the_most_pruning_among_the_best() -> None:
    cands = [
        {"a": 0.5, "accuracy": 0.80, "density": 0.1},
        {"a": 2.0, "accuracy": 0.90, "density": 0.4},
        {"a": 4.0, "accuracy": 0.90, "density": 0.6},
        {"a": 8.0, "accuracy": 0.91, "density": 0.8},
    ]
    assert choose_prune(cands)["a"] == 8.0
    assert choose_prune(cands, tolerance=1.0)["a"] == 2.0
    assert choose_prune(cands, tolerance=20.0)["a"] == 0.5


def test_choose_smallest_keeps_the_reference_or_says_it_did_not() -> None:
    cands = [
        {"bytes": 5, "accuracy": 0.70},
        {"bytes": 9, "accuracy": 0.86},
        {"bytes": 20, "accuracy": 0.88},
    ]
    assert choose_smallest(cands, 0.86) == (cands[1], True)
    assert choose_smallest(cands, 0.90) == (cands[2], False)
    assert choose_smallest(cands, 0.90, tolerance=25.0) == (cands[0], True)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"teachers": []}, "at least one teacher"),
        ({"teachers": [{"name": "x"}]}, "exactly one of model"),
        ({"teachers": [{"model": "cnn5"}, {"model": "cnn5"}]}, r"repeated: \['cnn5'\]"),
        ({"teachers": [{"model": "cnn5", "name": "student"}]}, "clash"),
        ({"quantize": ["int4"]}, r"quantize: \['int4'\]"),
        ({"distill": {"temperature": -1}}, "temperature"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"teacher": []}, "unknown key 'teacher'"),
        ({"teachers": [{"model": "cnn5", "pretrained": True}]}, "torchvision teachers only"),
    ],
)
def test_bad_recipes_are_one_config_error(tmp_path: Path, change, match) -> None:
    with pytest.raises(ConfigError, match=match):
        recipe(tmp_path, **change)


def test_a_missing_teacher_run_is_named(tmp_path: Path) -> None:
    write_tiny_pneumonia(tmp_path / "data")
    r = recipe(tmp_path / "data", teachers=[{"run": str(tmp_path / "nope")}])
    with pytest.raises(DistillationError, match="is not a finished run directory"):
        run_distillation(r, tmp_path / "out", progress=False)


def test_new_pq_candidates_extend_a_finished_folder(study, tmp_path: Path) -> None:
    import shutil

    out, rows, r = study
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    first = copy / "distilled_pq" / "0-pq-a0.5-b4" / "best.pt"
    before = first.stat().st_mtime_ns
    extended = DistillRecipe.from_dict(
        {**r.to_dict(), "compression": [*r.to_dict()["compression"], {"alpha": 1.5, "bits": 2}]}
    )
    again = run_distillation(extended, copy, progress=False)
    assert "distilled_pq/2-pq-a1.5-b2" in again
    assert first.stat().st_mtime_ns == before  # the earlier candidates are reused
    assert again["distilled"]["accuracy"] == rows["distilled"]["accuracy"]
