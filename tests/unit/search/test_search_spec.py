"""Search specs: the committed ones load, bad ones are one ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pqcompress.errors import ConfigError
from pqcompress.search import SearchSpec
from pqcompress.testing.runs import tiny_search_spec

SPECS = [
    p
    for p in sorted((Path(__file__).parents[3] / "recipes").glob("search_*.yaml"))
    if "objectives" in (yaml.safe_load(p.read_text()) or {})
]


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_committed_specs_load_and_round_trip(path: Path) -> None:
    spec = SearchSpec.from_yaml(path)
    assert SearchSpec.from_dict(spec.to_dict()) == spec
    if spec.space == "pq":  # the closed-loop demonstration: a short run
        assert spec.budget >= 20
        return
    assert spec.budget == 100 and spec.repeats == 5
    names = [a.name(spec.surrogate, spec.budget) for a in spec.runs]
    assert "ctaea 5x20" in names and "ctaea 10x10" in names


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "my_study.yaml"
    spec = tiny_search_spec("run")
    del spec["name"]
    path.write_text(yaml.safe_dump(spec))
    assert SearchSpec.from_yaml(path).name == "my_study"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"model": ""}, "model: give"),
        ({"objectives": ["nonzero", "size"]}, "accuracy among them"),
        ({"objectives": ["accuracy", "joy"]}, "accuracy among them"),
        ({"constraints": {"accuracy_min": 0.5, "accuracy_drop_max": 0.1}}, "exactly one"),
        ({"algorithm": "annealing"}, "algorithm='annealing'"),
        ({"initial": 10}, "initial=10 must lie in 1..budget-1"),
        ({"surrogate": {"selection": {"objectives": "r2"}}}, r"\['r2'\] not in"),
        ({"surrogate": {"candidates": ["xgboost"]}}, "surrogate.candidates"),
        ({"space": "pq", "pq": {"steps": 0}}, None),
        ({"space": "pq", "pq": {"epochs": 3}}, None),
        ({"budgett": 3}, "unknown key 'budgett'"),
    ],
)
def test_bad_specs_are_one_config_error(change, match) -> None:
    data = {**tiny_search_spec("run"), **change}
    if match is None:  # accepted by the spec; refused when the space is built
        from pqcompress.search.runner import build_space

        with pytest.raises(ConfigError, match=r"pq\.steps=0|unknown options \['epochs'\]"):
            build_space(SearchSpec.from_dict(data))
        return
    with pytest.raises(ConfigError, match=match):
        SearchSpec.from_dict(data)


def test_per_target_selection_metrics() -> None:
    spec = SearchSpec.from_dict(
        {
            **tiny_search_spec("run"),
            "surrogate": {"selection": {"objectives": {"accuracy": "spearman", "nonzero": "mse"}}},
        }
    )
    s = spec.surrogate
    assert s.metric_for("objectives", "accuracy") == "spearman"
    assert s.metric_for("objectives", "nonzero") == "mse"
    assert s.metric_for("constraints", "accuracy_min") == "mape"


def test_ray_address_needs_the_ray_executor(tmp_path: Path, capsys) -> None:
    from pqcompress.cli.main import main

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_search_spec(str(tmp_path / "no-run"))))
    code = main(["search", str(path), "--store", str(tmp_path / "r.db"), "--ray-address", "auto"])
    err = capsys.readouterr().err
    assert code != 0 and "--ray-address applies to --executor ray only" in err


def test_every_accepted_algorithm_has_a_runner() -> None:
    from pqcompress.search.loop import ALGORITHM_RUNNERS
    from pqcompress.search.spec import ALGORITHMS

    assert set(ALGORITHM_RUNNERS) == set(ALGORITHMS)
