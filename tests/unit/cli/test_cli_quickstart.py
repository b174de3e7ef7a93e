"""`pqcompress quickstart`, the README's main job, on a short budget."""

from __future__ import annotations

from pqcompress.cli.main import main


def test_quickstart_prints_both_runs_and_per_layer_levels(capsys, tmp_path):
    code = main(["quickstart", "--epochs", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "float32" in out and "P->Q a=0.5 b=4" in out
    assert "features.0.weight" in out and "levels" in out
    assert (tmp_path / "float32" / "result.json").exists() and (
        tmp_path / "PQ" / "result.json"
    ).exists()


def test_quickstart_selects_on_validation_with_the_recipes_schedule():
    from pqcompress.cli.quickstart import quickstart_configs

    base, pq = quickstart_configs()
    for cfg in (base, pq):
        assert cfg.train.best_on == "val"
        assert cfg.train.lr_schedule == "onecycle"
    assert base.train == pq.train  # the two runs differ only in compression
    assert pq.compression is not None and pq.compression.bits == 4
