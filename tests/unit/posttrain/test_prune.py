"""Post-training pruning: L1, random, std; layer selection, scopes, saving as .pqz."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pqcompress import codec
from pqcompress.errors import ConfigError
from pqcompress.ops.prune import std_threshold
from pqcompress.posttrain import prune_l1, prune_random, prune_std, select_tensors, sparsity
from pqcompress.testing.tiny import TinyConvNet, TinyMLP


def _model(seed: int = 0) -> TinyConvNet:
    torch.manual_seed(seed)
    return TinyConvNet().eval()


def _zeros(t: torch.Tensor) -> float:
    return float((t == 0).float().mean())


def test_select_tensors_layers_and_params():
    m = _model()
    assert set(select_tensors(m, "conv", "weights")) == {"features.0.weight"}
    assert set(select_tensors(m, "linear", "biases")) == {"classifier.0.bias"}
    both = set(select_tensors(m, "both", "both"))
    assert both == {
        "features.0.weight",
        "features.0.bias",
        "classifier.0.weight",
        "classifier.0.bias",
    }
    # BatchNorm is neither linear nor conv
    assert not any(n.startswith("features.1") for n in both)


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_l1_layer_scope_exact_fraction_and_smallest(amount):
    m = _model()
    before = m.classifier[0].weight.detach().clone()
    prune_l1(m, amount, layers="linear")
    w = m.classifier[0].weight.detach()
    k = round(amount * w.numel())
    assert int((w == 0).sum()) == k
    if 0 < k < w.numel():  # every pruned entry is no larger than every survivor
        pruned = before[w == 0].abs().max()
        kept = before[w != 0].abs().min()
        assert pruned <= kept
    assert torch.equal(w[w != 0], before[w != 0])
    assert _zeros(m.features[0].weight) == 0.0  # conv untouched


def test_l1_global_scope_uses_one_threshold():
    m = _model()
    before = {n: t.detach().clone() for n, t in select_tensors(m, "both", "weights").items()}
    prune_l1(m, 0.5, layers="both", scope="global")
    after = select_tensors(m, "both", "weights")
    total = sum(t.numel() for t in after.values())
    zeros = sum(int((t == 0).sum()) for t in after.values())
    assert zeros == round(0.5 * total)
    max_pruned = max(float(before[n][after[n] == 0].abs().max()) for n in after)
    min_kept = min(float(before[n][after[n] != 0].abs().min()) for n in after)
    assert max_pruned <= min_kept


def test_biases_only():
    m = _model()
    w = m.classifier[0].weight.detach().clone()
    prune_l1(m, 0.5, layers="linear", params="biases")
    assert torch.equal(m.classifier[0].weight, w)
    assert int((m.classifier[0].bias == 0).sum()) == 5


def test_random_is_seeded_and_not_magnitude():
    a, b, c = _model(), _model(), _model()
    prune_random(a, 0.5, seed=3)
    prune_random(b, 0.5, seed=3)
    prune_random(c, 0.5, seed=4)
    wa, wb, wc = (m.classifier[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa == 0, wc == 0)
    assert int((wa == 0).sum()) == round(0.5 * wa.numel())


def test_std_matches_ops_threshold():
    m = _model()
    w0 = m.classifier[0].weight.detach().clone()
    prune_std(m, 0.7, layers="linear")
    beta = std_threshold(w0, 0.7)
    assert torch.equal(m.classifier[0].weight, torch.where(w0.abs() >= beta, w0, 0.0))


def test_std_global():
    m = _model()
    prune_std(m, 1.0, layers="both", scope="global")
    assert 0.0 < sparsity(m, "both", "weights") < 1.0


def test_bad_arguments():
    m = _model()
    with pytest.raises(ConfigError):
        prune_l1(m, 1.5)
    with pytest.raises(ConfigError):
        prune_l1(m, 0.5, layers="dense")
    with pytest.raises(ConfigError):
        prune_random(m, 0.5, params="all")
    with pytest.raises(ConfigError):
        prune_std(m, 0.5, scope="model")


def test_modules_subset():
    m = TinyMLP()
    prune_l1(m, 0.5, layers="linear", modules=["classifier.2"])
    assert _zeros(m.classifier[0].weight) == 0.0
    assert _zeros(m.classifier[2].weight) == 0.5


def test_pruned_model_saves_as_pqz_and_evaluates(tmp_path):
    m = _model()
    prune_l1(m, 0.8, layers="both")
    x = torch.randn(4, 1, 8, 8)
    path = codec.save(m, tmp_path / "p.pqz")
    fresh = TinyConvNet()
    codec.load_into(fresh, path)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), m(x))
    # sparse layouts make the file smaller than the dense model
    dense = codec.save(_model(), tmp_path / "d.pqz")
    assert path.stat().st_size < dense.stat().st_size


def test_returns_same_module():
    m = nn.Sequential(nn.Linear(4, 4))
    assert prune_l1(m, 0.25) is m


@pytest.mark.parametrize("fn", [prune_l1, prune_random])
def test_pruned_entries_are_positive_zero(fn):
    # -0.0 would not be bit-identical to the code 0 a .pqz file decodes to
    m = _model()
    fn(m, 0.6, layers="both", params="both")
    for t in select_tensors(m, "both", "both").values():
        assert not torch.signbit(t[t == 0]).any()
