"""The Compressor on real modules: schedules, update forms, policy, stats, state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pqcompress import CompressionConfig, Compressor, LayerOverride
from pqcompress.aware.compressor import DivergedError
from pqcompress.errors import ConfigError
from pqcompress.ops import decode, level_count_bound

from .aware_support import batches, net


def train(model, comp, data, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if comp is not None:
            comp.step()


@pytest.mark.parametrize("update", ["inplace", "latent"])
@pytest.mark.parametrize("form", ["exact", "literal", "uniform"])
def test_params_hold_compressed_values_after_each_step(update, form):
    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4, form=form, update=update))
    assert comp.names() == ["0.weight", "4.weight", "6.weight"]
    train(model, comp, batches(3))
    for t in comp.targets:
        res = comp.compressed(t.name)
        assert torch.equal(
            decode(res.codes, res.kind, res.scale, res.threshold, bits=4), t.param.detach()
        )
        bound = level_count_bound(form, 4)
        if bound:
            assert torch.unique(t.param.detach()).numel() <= bound
        if form == "exact":  # only the dead-zone form keeps every survivor at |c| >= beta
            assert torch.all(t.param.detach().abs()[t.param.detach() != 0] >= res.threshold)
    assert 0.0 < comp.density() < 1.0
    assert comp.steps == 3 and comp.applications == 3


def test_latent_mode_keeps_small_updates_that_inplace_rounds_away():
    # 2-bit uniform grid: an lr-sized update is far below half a step, so in place it is lost
    torch.manual_seed(0)
    init = nn.Linear(50, 1, bias=False).weight.detach().clone()
    x = torch.randn(64, 50)
    cfg = dict(alpha=0.0, bits=2, form="uniform", rounding="nearest")
    out = {}
    for update in ("inplace", "latent"):
        model = nn.Sequential(nn.Linear(50, 1, bias=False))
        model[0].weight.data.copy_(init)
        comp = Compressor(model, CompressionConfig(update=update, **cfg))
        comp.apply()
        codes0 = comp.compressed("0.weight").codes.clone()
        float0 = comp.latent_weights()["0.weight"].clone()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        for _ in range(5):
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            comp.step()
        out[update] = (
            torch.equal(comp.compressed("0.weight").codes, codes0),
            float((comp.latent_weights()["0.weight"] - float0).abs().max()),
        )
    assert out["inplace"][0]  # every update rounded away: same codes
    assert out["latent"][1] > 1e-6  # the float weights accumulated the updates


def test_epoch_and_post_schedules():
    data = batches(4)
    model = net()
    w0 = model[4].weight.detach().clone()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4, schedule="epoch"))
    train(model, comp, data)
    assert (
        comp.applications == 0 and torch.count_nonzero(model[4].weight) == model[4].weight.numel()
    )
    assert not torch.equal(w0, model[4].weight)
    comp.epoch_end()
    assert comp.applications == 1 and comp.density() < 1.0

    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4, schedule="post"))
    train(model, comp, data)
    comp.epoch_end()
    assert comp.applications == 0
    comp.apply()
    assert comp.applications == 1 and comp.density() < 1.0


def test_alpha0_bits32_leaves_every_weight_bit_identical():
    torch.manual_seed(0)
    a, b = net(), net()
    comp = Compressor(b, CompressionConfig(alpha=0.0, bits=32))
    data = batches(3)
    train(a, None, data)
    train(b, comp, data)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert all(s.kind == "none" for s in comp.stats())


def test_policy_include_exclude_overrides_and_biases():
    model = net()
    cfg = CompressionConfig(
        alpha=0.5,
        bits=8,
        targets="both",
        exclude=("6",),
        overrides=(LayerOverride("0", bits=2, alpha=1.0),),
    )
    comp = Compressor(model, cfg)
    assert comp.names() == ["0.weight", "0.bias", "4.weight", "4.bias"]
    comp.apply()
    by_name = {s.name: s for s in comp.stats()}
    assert by_name["0.weight"].bits == 2 and by_name["0.weight"].alpha == 1.0
    assert by_name["0.weight"].levels <= level_count_bound("exact", 2)
    assert by_name["4.weight"].bits == 8
    with pytest.raises(ConfigError, match="nothing would be compressed"):
        Compressor(net(), CompressionConfig(overrides=(LayerOverride("*", skip=True),)))


def test_no_matching_module_is_a_clear_error():
    with pytest.raises(ConfigError, match="no tensor of the model matches"):
        Compressor(net(), CompressionConfig(include=("does_not_exist*",)))
    with pytest.raises(ConfigError, match="layer_types entry 'Dense'"):
        Compressor(net(), CompressionConfig(layer_types=("Dense",)))


def test_stats_records():
    model = net()
    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    comp.apply()
    s = comp.stats()[1]
    assert s.name == "4.weight" and s.module_type == "Linear" and s.kind == "exact"
    assert s.numel == 32 * 512 and s.nonzero + round(s.sparsity * s.numel) == s.numel
    assert 2 < s.levels <= 17 and s.threshold > 0 and s.scale > 0
    assert s.to_dict()["name"] == "4.weight"


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_state_dict_round_trip_resumes_exactly(rounding):
    cfg = CompressionConfig(alpha=0.5, bits=4, update="latent", rounding=rounding, backend="torch")
    data = batches(6)
    model_a = net()
    comp_a = Compressor(model_a, cfg)
    opt_a = torch.optim.SGD(model_a.parameters(), lr=0.05)
    for i, (x, y) in enumerate(data):
        F.cross_entropy(model_a(x), y).backward()
        opt_a.step()
        opt_a.zero_grad()
        comp_a.step()
        if i == 2:
            saved = (
                {k: v.clone() for k, v in model_a.state_dict().items()},
                comp_a.state_dict(),
                opt_a.state_dict(),
            )
    model_b = net()
    model_b.load_state_dict(saved[0])
    comp_b = Compressor(model_b, cfg)
    comp_b.load_state_dict(saved[1])
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.05)
    opt_b.load_state_dict(saved[2])
    for x, y in data[3:]:
        F.cross_entropy(model_b(x), y).backward()
        opt_b.step()
        opt_b.zero_grad()
        comp_b.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


def test_diverged_weights_raise_a_clear_error():
    model = net()
    comp = Compressor(model, CompressionConfig())
    with torch.no_grad():
        model[4].weight[0, 0] = float("inf")
    with pytest.raises(DivergedError, match=r"4\.weight.*diverged"):
        comp.step()


def test_a_model_sharded_with_fsdp_is_refused_in_one_line(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("this torch build has no torch.distributed")
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        fully_shard(model)
        with pytest.raises(ConfigError, match="sharded with FSDP"):
            Compressor(model, CompressionConfig(bits=4))
    finally:
        dist.destroy_process_group()


def test_a_2_bit_grid_that_zeroes_the_layers_is_warned_about_once(caplog):
    """bits 2 at alpha 0 rounds most weights to zero (ops.pq.grid_collapse): one warning naming
    the tensors; the ternary setting (alpha > 0) and 3 bits say nothing."""
    from torch import nn

    from pqcompress import CompressionConfig, Compressor

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with caplog.at_level("WARNING", logger="pqcompress.aware"):
        Compressor(model, CompressionConfig(alpha=0.0, bits=2))
        Compressor(model, CompressionConfig(alpha=0.8, bits=2))
        Compressor(model, CompressionConfig(alpha=0.0, bits=3))
    warned = [
        r.getMessage() for r in caplog.records if "rounds most weights to 0" in r.getMessage()
    ]
    assert len(warned) == 1 and warned[0].startswith("0.weight, 2.weight:")
