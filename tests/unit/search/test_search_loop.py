"""The search on a tiny real model: each algorithm, the budget, memoisation, constraint
handling, resume after kill -9, and summary.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pqcompress import faults
from pqcompress.errors import ConfigError
from pqcompress.results.search import SearchStore
from pqcompress.search import SearchSpec, run_search
from pqcompress.testing.runs import tiny_search_spec as spec_dict

# every test here reports hypervolumes (pymoo's), and C-TAEA is pymoo's: each test is skipped
# on its own without it
pytestmark = pytest.mark.requires("pymoo")

ALGOS = [
    "surrogate",
    {"algorithm": "ctaea", "pop_size": 5},
    "random",
    {"algorithm": "optuna", "pop_size": 4},
]


@pytest.fixture(scope="module")
def searched(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("optuna")  # one of the algorithms this search runs
    base = tmp_path_factory.mktemp("searched")
    spec = SearchSpec.from_dict(spec_dict(tiny_run, algorithms=ALGOS))
    entries = run_search(spec, base / "r.db", out=base / "out")
    return base, spec, entries


def test_every_algorithm_spends_its_budget_and_reports_the_keys(searched) -> None:
    base, _, entries = searched
    assert [e["algorithm"] for e in entries] == [
        "surrogate MAPE/MAPE",
        "ctaea 5x2",
        "random",
        "optuna",
    ]
    summary = json.loads((base / "out" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(entries))
    for e in summary:
        assert {
            "algorithm",
            "repeat",
            "evaluations",
            "hypervolume",
            "reference_point",
            "front",
        } <= set(e)
        assert 1 <= e["evaluations"] <= 10
        assert e["reference_point"] == [1.0, 1.0]
        for point in e["front"]:
            assert {"variables", "objectives", "constraints"} <= set(point)


def test_no_infeasible_point_on_any_front(searched) -> None:
    _, _, entries = searched
    for e in entries:
        floor = e["normalisation"]["accuracy_floor"]
        for point in e["front"]:
            assert point["objectives"]["accuracy"] >= floor
            assert point["constraints"]["accuracy_min"] <= 0


def test_every_evaluation_is_one_row_and_none_repeats_within_a_run(searched) -> None:
    base, _, entries = searched
    store = SearchStore(base / "r.db")
    rows = store.all_evaluations("tiny")
    per_run: dict[tuple[str, int], list[str]] = {}
    for r in rows:
        per_run.setdefault((r["algorithm"], r["repeat"]), []).append(r["key"])
        assert r["wall_s"] > 0 and set(r["objectives"]) >= {"accuracy", "nonzero"}
    for e in entries:
        keys = per_run[(e["algorithm"], e["repeat"])]
        assert len(keys) == len(set(keys)) == e["evaluations"]


def test_surrogate_iterations_record_their_picks_and_overheads(searched) -> None:
    base, _, entries = searched
    its = [i for i in SearchStore(base / "r.db").iterations("tiny") if i["picks"]]
    assert its, "no surrogate iteration recorded"
    for it in its:
        targets = {p["target"] for p in it["picks"] if "target" in p}
        assert targets == {"accuracy", "nonzero", "accuracy_min"}
        assert it["fit_s"] > 0 and it["optimize_s"] > 0
    overhead = entries[0]["overhead_s_per_iteration"]
    assert overhead["iterations"] == len(its) and overhead["fit"] > 0


def test_a_rerun_measures_nothing_again(searched, monkeypatch) -> None:
    base, spec, entries = searched
    from pqcompress.search import evaluate

    def boom(self, config):
        raise AssertionError("a real evaluation ran on a finished study")

    monkeypatch.setattr(evaluate.PostTrainEvaluator, "__call__", boom)
    again = run_search(spec, base / "r.db")
    assert [e["hypervolume"] for e in again] == [e["hypervolume"] for e in entries]


def test_changed_settings_under_the_same_name_are_refused(searched, tiny_run) -> None:
    base, _, _ = searched
    other = SearchSpec.from_dict(spec_dict(tiny_run, subset=60, algorithms=["random"]))
    with pytest.raises(ConfigError, match=r"study 'tiny' with other settings \(subset\)"):
        run_search(other, base / "r.db")


def test_kill_9_then_rerun_resumes_without_losing_evaluations(tiny_run, tmp_path) -> None:
    spec_path = tmp_path / "spec.yaml"
    import yaml

    spec_path.write_text(
        yaml.safe_dump(spec_dict(tiny_run, name="killed", budget=12, algorithms=["random"]))
    )
    db = tmp_path / "r.db"
    hold = tmp_path / "hold"
    hold.write_text("")
    env = {**os.environ, faults.ENV: faults.spec("evaluations", "5", hold), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqcompress.cli.main", "search", str(spec_path), "--store", str(db)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    held = tmp_path / "hold.held"
    deadline = time.monotonic() + 300
    while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held.exists(), proc.stderr.read().decode() if proc.poll() is not None else "never held"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = SearchStore(db).all_evaluations("killed")
    assert len(before) >= 5
    entries = run_search(SearchSpec.from_yaml(spec_path), db)
    after = SearchStore(db).all_evaluations("killed")
    assert entries[0]["evaluations"] == len(after) == 12
    assert [r["key"] for r in after[: len(before)]] == [r["key"] for r in before]
    # the same sequence as an uninterrupted run of the same spec
    fresh = run_search(SearchSpec.from_yaml(spec_path), tmp_path / "fresh.db")
    assert fresh[0]["hypervolume"] == pytest.approx(entries[0]["hypervolume"])


def test_pq_space_fine_tunes_and_measures_the_served_file(tiny_run, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    spec = SearchSpec.from_dict(
        spec_dict(
            tiny_run, name="pq", space="pq", pq={"steps": 3, "bits": [3, 8]}, budget=3,
            initial=2, algorithms=["random"], objectives=["accuracy", "size", "latency"],
            latency_repeats=3,
        )
    )  # fmt: skip
    (entry,) = run_search(spec, tmp_path / "r.db", out=tmp_path / "out")
    rows = SearchStore(tmp_path / "r.db").all_evaluations("pq")
    assert entry["evaluations"] == len(rows) == 3
    reference = entry["normalisation"]["reference"]
    for r in rows:
        assert set(r["variables"]) == {
            "conv_alpha",
            "linear_alpha",
            "conv_bits",
            "linear_bits",
            "form",
        }
        o = r["objectives"]
        assert 0 < o["size"] < reference["size"]  # codes + pruning: smaller than float32
        assert o["latency"] > 0 and 0 <= o["accuracy"] <= 1


def test_pq_space_proposes_bits_for_named_layers(tiny_run, tmp_path) -> None:
    """pq.layer_bits: the first and last layer get bits of their own, which the evaluation's
    compression settings apply (first match wins over the conv/linear groups)."""
    from pqcompress.search.pq_evaluate import pq_space

    space = pq_space({"bits": [2, 8], "layer_bits": ["features.0", "classifier.*"]})
    names = {v.name for v in space.variables}
    assert {"bits@features.0", "bits@classifier.*"} <= names
    pytest.importorskip("onnxruntime")
    spec = SearchSpec.from_dict(
        spec_dict(
            tiny_run, name="pql", space="pq",
            pq={"steps": 2, "bits": [2, 8], "layer_bits": ["features.0"]}, budget=3,
            initial=2, algorithms=["random"], objectives=["accuracy", "size"],
        )
    )  # fmt: skip
    run_search(spec, tmp_path / "r.db", out=tmp_path / "out")
    rows = SearchStore(tmp_path / "r.db").all_evaluations("pql")
    assert rows and all("bits@features.0" in r["variables"] for r in rows)
    from types import SimpleNamespace

    from pqcompress import Compressor
    from pqcompress.errors import ConfigError
    from pqcompress.models import build_model
    from pqcompress.search.pq_evaluate import PQEvaluator, pq_options

    model = build_model("cnn5", num_classes=10, input_shape=(1, 8, 8))
    options = pq_options({"bits": [2, 8], "layer_bits": ["features.0", "classifier.*"]})
    fake = SimpleNamespace(space=space, model=model, options=options)
    choice = {"conv_alpha": 0.3, "linear_alpha": 0.6, "conv_bits": 2, "linear_bits": 2,
              "form": "exact", "bits@features.0": 8, "bits@classifier.*": 8}  # fmt: skip
    comp = Compressor(model, PQEvaluator.compression(fake, choice))  # type: ignore[arg-type]
    bits = {t.module_name: (t.bits, t.alpha) for t in comp.targets}
    assert bits["features.0"] == (8, 0.3) and bits["classifier.0"] == (8, 0.6)
    assert bits["features.3"] == (2, 0.3)
    with pytest.raises(ConfigError, match="layer_bits"):
        pq_space({"layer_bits": "features.0"})


def test_pq_space_on_a_users_own_token_model(tmp_path) -> None:
    """A run of a user's factory model on token data: the pq space rebuilds it from the
    run's factory, fine-tunes under P->Q, exports with the input spec and times the graph."""
    pytest.importorskip("onnxruntime")
    from pqcompress.config import DataConfig, ExperimentConfig, TrainConfig
    from pqcompress.train.trainer import train

    options = {
        "frames_per_class_snr": 4,
        "frame_length": 16,
        "snr_min": 0,
        "snr_max": 10,
        "snr_step": 5,
    }
    cfg = ExperimentConfig(
        model="tests.unit.data.test_modulation_tokens:tiny_transformer",
        dataset="modulation-tokens",
        data=DataConfig(options=options, val_fraction=0.25),
        train=TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=1e-3, best_on="val"),
    )
    train(cfg, tmp_path / "run", progress=False)
    spec = SearchSpec.from_dict(
        spec_dict(
            tmp_path / "run", name="tok", space="pq", dataset="modulation-tokens", subset=None,
            pq={"steps": 2, "bits": [4]}, budget=2, initial=1, algorithms=["random"],
            objectives=["accuracy", "size", "latency"], latency_repeats=2,
            constraints={"accuracy_drop_max": 1.0},
        )
    )  # fmt: skip
    (entry,) = run_search(spec, tmp_path / "r.db")
    rows = SearchStore(tmp_path / "r.db").all_evaluations("tok")
    assert entry["evaluations"] == len(rows) == 2
    assert all(r["objectives"]["latency"] > 0 for r in rows)
    with pytest.raises(ConfigError, match="factory="):
        SearchSpec.from_dict(spec_dict(tmp_path / "run", factory="not a path"))


def test_local_workers_measure_what_the_inline_search_measures(tiny_run, tmp_path) -> None:
    """The search's evaluations on two local worker processes (each builds its evaluator
    once from the fork server) equal the inline ones, point for point."""
    spec = SearchSpec.from_dict(spec_dict(tiny_run, algorithms=["random"]))
    inline = run_search(spec, tmp_path / "inline.db")
    local = run_search(spec, tmp_path / "local.db", executor="local", workers=2)
    assert [e["hypervolume"] for e in local] == [e["hypervolume"] for e in inline]
    stores = [SearchStore(tmp_path / f"{n}.db", readonly=True) for n in ("inline", "local")]
    try:
        rows = [
            {
                r["key"]: r["objectives"]["accuracy"]
                for r in s.all_evaluations(spec.name or "search")
            }
            for s in stores
        ]
    finally:
        for s in stores:
            s.close()
    assert rows[0] == rows[1] and len(rows[0]) > 1
