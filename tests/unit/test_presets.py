"""Presets: every one builds a valid config, and sparse10 on cnn5 is the grid's setting."""

from __future__ import annotations

import pytest

from pqcompress import CompressionConfig, LayerOverride
from pqcompress.aware.policy import select_targets
from pqcompress.config import ExperimentConfig, from_dict
from pqcompress.errors import ConfigError
from pqcompress.models.registry import build_model
from pqcompress.presets import PRESETS, apply_preset, get_preset, preset_compression


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_makes_a_valid_experiment_config(name):
    data = apply_preset({"model": "cnn5", "dataset": "digits"}, name)
    cfg = from_dict(ExperimentConfig, data)
    assert cfg.compression is not None
    for key, value in get_preset(name).settings.items():
        section, field = key.split(".")
        assert getattr(getattr(cfg, section), field) == value


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'fast'.*sparse10-4bit, studies"):
        get_preset("fast")


def test_sparse10_on_cnn5_solves_the_layers_the_grid_recipe_solved():
    """The grid's headline points fix every layer but classifier.0 at alpha .5 by pattern;
    the preset's share rule picks the same layers on cnn5 without naming them."""
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    data = apply_preset({"model": "cnn5", "dataset": "cifar10"}, "sparse10-4bit")
    preset = from_dict(ExperimentConfig, data).compression
    recipe = CompressionConfig(
        bits=4,
        target_density=0.10,
        overrides=(
            LayerOverride("features.*", alpha=0.5),
            LayerOverride("classifier.[369]", alpha=0.5),
        ),
    )
    a, b = select_targets(model, preset), select_targets(model, recipe)
    assert [(t.name, t.solved, t.alpha, t.bits) for t in a] == [
        (t.name, t.solved, t.alpha, t.bits) for t in b
    ]
    assert [t.name for t in a if t.solved] == ["classifier.0.weight"]


def test_preset_compression_builds_the_library_config_with_changes():
    cfg = preset_compression("sparse10-3bit", ramp_steps=500)
    assert (cfg.bits, cfg.target_density, cfg.solve_min_share, cfg.ramp_steps) == (
        3,
        0.1,
        0.05,
        500,
    )
    with pytest.raises(ConfigError, match="ramp_steps"):
        preset_compression("sparse10-4bit", ramp_steps=-1)


@pytest.mark.parametrize("name", ["sparse10-4bit", "sparse10-3bit"])
def test_sparse10_meets_its_density_on_cnn5_within_a_point(name):
    """cnn5's classifier.0 (1.97M weights) is solved from a sample; the total must still land
    within a point of the 10% asked for, with the small layers at alpha .5."""
    import torch

    from pqcompress import Compressor

    torch.manual_seed(0)
    model = build_model("cnn5", num_classes=10, input_shape=(3, 32, 32))
    with torch.no_grad():  # a layout that repeats every 16 inputs, as trained cnn5 weights do
        w = model.get_submodule("classifier.0").weight
        w.mul_(torch.linspace(0.2, 2.0, 16).repeat(w.shape[1] // 16))
    comp = Compressor(model, preset_compression(name))
    comp.apply()
    assert comp.density() == pytest.approx(0.10, abs=0.01)
    stats = {s.name: s for s in comp.stats()}
    assert stats["features.0.weight"].applied_alpha == 0.5
    assert stats["classifier.0.weight"].applied_alpha == comp.solved_alpha
