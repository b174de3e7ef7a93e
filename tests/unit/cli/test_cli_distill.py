"""``pqcompress distill``: the documented command line, its table, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pqcompress.cli.main import main
from pqcompress.studies.distill_recipe import DistillRecipe
from pqcompress.testing.tiny import write_tiny_pneumonia

RECIPES = sorted((Path(__file__).parents[3] / "recipes").glob("distill_*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_distillation_recipe_loads_and_round_trips(recipe: Path) -> None:
    r = DistillRecipe.from_yaml(recipe)
    assert DistillRecipe.from_dict(r.to_dict()) == r


def test_command_line_runs_the_study_and_prints_its_table(tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    write_tiny_pneumonia(tmp_path / "data")
    recipe = {
        "dataset": "pneumonia",
        "data": {"root": str(tmp_path / "data")},
        "teachers": [{"model": "student_cnn"}],
        "train": {"epochs": 1, "batch_size": 16},
        "teacher_train": {"epochs": 1, "batch_size": 16},
        "prune": {"a": [1, 4]},
        "quantize": ["float16"],
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code = main(["distill", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(rows) >= {"teacher", "student_cnn", "student", "distilled", "float16"}
    for key in ("teacher", "distilled_pruned", "float16"):
        assert any(line.startswith(key + " ") for line in out.splitlines()), key


def test_a_bad_recipe_is_one_line_on_stderr(tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("teachers: [{model: cnn5}]\ncombine: median\n")
    code = main(["distill", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "combine" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
