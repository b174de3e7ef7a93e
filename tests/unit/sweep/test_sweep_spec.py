"""SweepSpec: strict loading, grid expansion, include points, validation and stable run ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sweep_support import MINIMAL_YAML, tiny_spec

from pqcompress.errors import ConfigError
from pqcompress.sweep import SweepSpec, run_id


def test_minimal_yaml_as_written(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(MINIMAL_YAML, encoding="utf-8")
    spec = SweepSpec.from_yaml(path)
    points = spec.points()
    assert spec.name == "mini"
    assert [p.params for p in points] == [
        {"alpha": 0.0, "bits": 32},
        {"alpha": 0.0, "bits": 4},
        {"alpha": 0.5, "bits": 32},
        {"alpha": 0.5, "bits": 4},
    ]
    assert [p.index for p in points] == [0, 1, 2, 3]
    cfg = points[3].config
    assert cfg.compression is not None and (cfg.compression.alpha, cfg.compression.bits) == (0.5, 4)
    assert (cfg.model, cfg.dataset, cfg.train.epochs, cfg.train.lr) == ("cnn5", "digits", 2, 0.05)
    assert points[3].label == "alpha=0.5 bits=4"


def test_run_ids_are_stable_short_hashes_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(MINIMAL_YAML, encoding="utf-8")
    first = [p.run_id for p in SweepSpec.from_yaml(path).points()]
    again = [p.run_id for p in SweepSpec.from_yaml(path).points()]
    assert first == again and len(set(first)) == 4
    assert all(re.fullmatch(r"[0-9a-f]{12}", rid) for rid in first)
    point = SweepSpec.from_yaml(path).points()[0]
    assert run_id(point.config) == point.run_id
    renamed = SweepSpec.from_dict({**tiny_spec(), "name": "other"}).points()
    assert [p.run_id for p in renamed] == [
        p.run_id for p in SweepSpec.from_dict(tiny_spec()).points()
    ]


def test_dotted_axes_include_points_and_duplicates() -> None:
    spec = SweepSpec.from_dict(
        tiny_spec(
            grid={"bits": [8], "train.momentum": [0.0, 0.9], "lr": [1e-3]},
            include=[
                {"bits": 8, "train.momentum": 0.9, "lr": 1e-3},  # duplicate of a grid point
                {"bits": 4, "schedule": "epoch", "compression.targets": "both"},
            ],
        )
    )
    points = spec.points()
    assert len(points) == 3
    assert [p.config.train.momentum for p in points[:2]] == [0.0, 0.9]
    last = points[2].config.compression
    assert last is not None and (last.schedule, last.targets, last.bits) == ("epoch", "both", 4)
    assert points[2].params == {"bits": 4, "schedule": "epoch", "compression.targets": "both"}


def test_exponent_floats_are_numbers(tmp_path: Path) -> None:
    path = tmp_path / "lr.yaml"
    path.write_text("model: cnn5\ngrid:\n  lr: [1e-4, 5e-2]\n", encoding="utf-8")
    assert [p.config.train.lr for p in SweepSpec.from_yaml(path).points()] == [1e-4, 5e-2]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grids": {}}, "unknown key 'grids' (did you mean 'grid'?)"),
        ({"grid": {"alhpa": [0.5]}}, "unknown axis 'alhpa' (did you mean 'alpha'?)"),
        ({"grid": {"bits": []}}, "grid axis 'bits' must be a non-empty list"),
        ({"grid": {"alpha": [0.5], "bits": [32, 1]}}, "grid axis 'bits' value 1"),
        ({"grid": {"train.momentun": [0.1]}}, "did you mean 'momentum'?"),
        ({"train": {"epochs": 0}}, "train.epochs=0 must be >= 1"),
        ({"include": [{"alpha": 0.5, "train.epochs": 0}]}, "include[0] (alpha=0.5 train.epochs=0)"),
        ({"include": [{"bogus": 1}]}, "include[0]: unknown axis 'bogus'"),
        ({"grid": {"train.lr.x": [1]}}, "cannot set 'train.lr.x': 'lr' is not a section"),
        ({"export": {"onnx": "int4"}}, "'export.onnx'='int4' is not accepted"),
        ({"export": {"float_dtype": "bf16"}}, "expected one of 'float32', 'float16'"),
        ({"export": {"float16": True}}, "unknown key 'export.float16'"),
    ],
)
def test_bad_specs_are_reported_precisely(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SweepSpec.from_dict(tiny_spec(**changes)).points()
    assert message in str(info.value)


def test_export_settings_round_trip_and_stay_out_of_the_run_ids(tmp_path: Path) -> None:
    """``export:`` says how the points' files are written, not what they train: the run ids
    are those of the same sweep without it, and the YAML round trip keeps it."""
    plain = SweepSpec.from_dict(tiny_spec())
    edge = SweepSpec.from_dict(tiny_spec(export={"onnx": "none", "float_dtype": "float16"}))
    assert edge.export.options() == {"onnx": "none", "float_dtype": "float16"}
    assert plain.export.options() == {"onnx": "auto", "float_dtype": "float32"}
    assert [p.run_id for p in edge.points()] == [p.run_id for p in plain.points()]
    path = tmp_path / "s.yaml"
    path.write_text(edge.to_yaml(), encoding="utf-8")
    assert SweepSpec.from_yaml(path).export == edge.export
    assert "export" not in plain.to_dict()


def test_missing_or_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SweepSpec.from_yaml(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        SweepSpec.from_yaml(path)


def test_recipes_expand() -> None:
    root = Path(__file__).resolve().parents[3] / "recipes"
    counts = {p.name: len(SweepSpec.from_yaml(p).points()) for p in root.glob("grid_*.yaml")}
    assert counts["grid_cnn5_cifar10_cpu.yaml"] == 22
    # the density points pin what they ran with (allocation std), so they keep their ids
    pinned = [p for p in SweepSpec.from_yaml(root / "grid_cnn5_cifar10_cpu.yaml").points()]
    assert {p.run_id for p in pinned} >= {"3ce79e5c03c5", "4152789a46df", "60beb50cde20"}
    assert counts["grid_cnn5_cifar10.yaml"] == 7 * 5 * 6 + 1
    assert counts["grid_vgg16_cifar10_microservice.yaml"] == 6
    assert counts["grid_vgg16_cifar10_microservice_cpu.yaml"] == 6
    assert counts["grid_amc1d_modulation_cpu.yaml"] == 4 * 5
    study = SweepSpec.from_yaml(root / "resnet20_cifar10_pq_study_cpu.yaml").points()
    assert len(study) == 25 and study[0].params == {"seed": 0, "bits": 32, "alpha": 0.0}
    assert {p.config.model for p in study} == {"resnet20"}
    cpu = SweepSpec.from_yaml(root / "grid_cnn5_cifar10_cpu.yaml").points()
    assert cpu[0].params == {"alpha": 0.0, "bits": 32}
    grid = {(p.config.compression.alpha, p.config.compression.bits) for p in cpu}
    assert {(a, b) for a in (0.0, 0.625, 1.25) for b in (32, 8, 4)} <= grid
    # one schedule for every point: all of CIFAR-10, 15 epochs, one-cycle lr
    assert all(
        p.config.data.subset is None
        and p.config.train.epochs == 15
        and p.config.train.lr_schedule == "onecycle"
        for p in cpu
    )
    density = [p for p in cpu if p.config.compression and p.config.compression.target_density]
    assert {p.config.compression.bits for p in density} == {3, 4}
    # the headline settings have two seeds: float32, and the 10% setting at 4 and at 3 bits
    seeds: dict[tuple, set[int]] = {}
    for p in cpu:
        key = tuple(sorted((k, repr(v)) for k, v in p.params.items() if k != "seed"))
        seeds.setdefault(key, set()).add(p.config.train.seed)
    two = [dict(k) for k, v in seeds.items() if v == {0, 1}]
    assert {"alpha": "0.0", "bits": "32"} in two
    assert {(d["bits"], d.get("target_density")) for d in two} >= {("4", "0.1"), ("3", "0.1")}


def test_run_ids_ignore_fields_at_their_defaults() -> None:
    """A config field added later with a default must not change existing ids."""
    from pqcompress.config import CompressionConfig, ExperimentConfig, non_default_dict

    plain = ExperimentConfig(compression=CompressionConfig(alpha=0.5, bits=4))
    spelled = ExperimentConfig.from_dict(
        {"compression": {"alpha": 0.5, "bits": 4, "mask": "free", "ramp_steps": 0}}
    )
    assert run_id(plain) == run_id(spelled)
    assert non_default_dict(plain) == {"compression": {"bits": 4}}
    sticky = ExperimentConfig(compression=CompressionConfig(alpha=0.5, bits=4, mask="sticky"))
    assert run_id(sticky) != run_id(plain)
    assert run_id(ExperimentConfig()) != run_id(plain)


def test_a_changed_default_keeps_the_ids_of_runs_recorded_under_the_former_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs recorded when a field's default was X keep their id; a config that takes the new
    default Y is a different run and gets an id of its own."""
    from pqcompress import config as cfgmod
    from pqcompress.config import CompressionConfig, ExperimentConfig, non_default_dict

    free = ExperimentConfig(compression=CompressionConfig(bits=4, mask="free"))
    sticky = ExperimentConfig(compression=CompressionConfig(bits=4, mask="sticky"))
    before = run_id(sticky)
    monkeypatch.setitem(cfgmod.FORMER_DEFAULTS, ("CompressionConfig", "mask"), "sticky")
    assert non_default_dict(sticky) == {"compression": {"bits": 4}}
    assert non_default_dict(free) == {"compression": {"bits": 4, "mask": "free"}}
    assert run_id(sticky) != before  # (here the pretend former default is sticky)


def test_an_include_only_sweep_runs_exactly_its_points() -> None:
    spec = SweepSpec.from_dict(tiny_spec(grid={}, include=[{"alpha": 0.5}, {"bits": 4}]))
    assert [p.params for p in spec.points()] == [{"alpha": 0.5}, {"bits": 4}]
    alone = SweepSpec.from_dict(tiny_spec(grid={}))  # no grid, no include: the base is the point
    assert [p.params for p in alone.points()] == [{}]
