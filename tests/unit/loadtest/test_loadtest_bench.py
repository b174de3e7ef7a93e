"""loadtest.bench: the spec is read strictly; the service command of a variant."""

from __future__ import annotations

import pytest

from pqcompress.loadtest import LoadTestError

# the bench (pqcompress.loadtest.bench) times services over HTTP with httpx: each test is
# skipped on its own without it, and the module is imported inside the tests
pytestmark = pytest.mark.requires("httpx")


def _spec(**changes):
    data = {
        "name": "b",
        "payloads": {"dataset": "digits", "count": 8},
        "variants": [
            {"name": "f32", "model": "a.pqz", "bits": 32, "alpha": 0.0},
            {
                "name": "i8",
                "model": "b.pqz",
                "bits": 8,
                "alpha": 1.25,
                "baseline": True,
                "serve": {"int8": True, "threads": 1},
            },
        ],
        "profiles": [
            {
                "name": "p75",
                "kind": "ramp",
                "peak_users": 75,
                "ramp_up_s": 5,
                "hold_s": 5,
                "ramp_down_s": 5,
                "user_rps": 0.2,
            },
        ],
    }
    data.update(changes)
    return data


def test_spec_reads_and_names_its_baseline():
    from pqcompress.loadtest.bench import BenchSpec

    spec = BenchSpec.from_dict(_spec())
    assert [v.name for v in spec.variants] == ["f32", "i8"]
    assert spec.baseline().name == "i8"
    assert spec.profiles[0].profile.peak_rps() == pytest.approx(15)
    assert spec.to_dict()["profiles"][0]["name"] == "p75"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"warmup": 3}, "unknown key"),
        ({"variants": []}, "non-empty list 'variants'"),
        ({"variants": [{"name": "x"}]}, r"bench spec: variants\[0\] needs model"),
        ({"variants": [{"name": "x", "model": "m", "serve": {"port": 1}}]}, "set by the bench"),
        ({"variants": [{"name": "x", "model": "m"}, {"name": "x", "model": "n"}]}, "unique"),
        ({"profiles": [{"name": "p", "kind": "rate", "rps": 0, "duration_s": 1}]}, "rps"),
        ({"payloads": None}, "payloads"),
        ({"repeats": 0}, "repeats"),
        ({"name": "bad name"}, "bench name"),
        (
            {"variants": [{"name": "x", "model": "m", "bits": "8"}]},
            r"variants\[0\].bits' must be an integer",
        ),
        (
            {"profiles": [{"name": "p", "kind": "rate", "rps": 2, "duraton_s": 1}]},
            "did you mean 'duration_s'",
        ),
    ],
)
def test_bad_specs_are_refused_in_one_line(changes, message):
    from pqcompress.loadtest.bench import BenchSpec

    with pytest.raises(LoadTestError, match=message):
        BenchSpec.from_dict(_spec(**changes))


def test_service_command_local_and_docker(tmp_path):
    from pqcompress.loadtest.bench import BenchSpec, Service

    model = tmp_path / "m.pqz"
    model.write_bytes(b"x")
    spec = BenchSpec.from_dict(_spec(variants=[{"name": "v", "model": str(model),
                                                "serve": {"threads": 2}}]))  # fmt: skip
    local = Service(spec.variants[0], 8123, docker=None, env={})
    assert local.command()[-2:] == ["serve"] or local.command()[-1] == "serve"
    assert local.settings_env["PQC_PORT"] == "8123" and local.settings_env["PQC_THREADS"] == "2"
    assert local.settings_env["PQC_MODEL"] == str(model.resolve())
    docker = Service(spec.variants[0], 8123, docker="pqc:latest", env={"OMP_NUM_THREADS": "1"})
    cmd = docker.command()
    assert cmd[:2] == ["docker", "run"] and "127.0.0.1:8123:8080" in cmd
    assert f"{tmp_path.resolve()}:/models:ro" in cmd and "OMP_NUM_THREADS=1" in cmd
    assert "PQC_HOST=0.0.0.0" in cmd and cmd[-2:] == ["pqc:latest", "/models/m.pqz"]
    missing = BenchSpec.from_dict(_spec(variants=[{"name": "v", "model": "nope.pqz"}]))
    with pytest.raises(LoadTestError, match="is not a file"):
        Service(missing.variants[0], 1, docker=None, env={})


def test_the_committed_bench_recipes_read():
    from pathlib import Path

    import yaml

    from pqcompress.loadtest.bench import BenchSpec

    recipes = sorted((Path(__file__).parents[3] / "recipes").glob("*.yaml"))
    benches = [r for r in recipes if "variants" in (yaml.safe_load(r.read_text()) or {})]
    assert benches
    for path in benches:
        spec = BenchSpec.from_yaml(path)
        assert spec.variants and spec.profiles
        assert spec.baseline().name == spec.variants[0].name or spec.baseline().baseline
