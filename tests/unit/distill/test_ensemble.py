"""Teacher ensembles: mean of logits, majority vote (with ties), soft targets and freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pqcompress.distill import TeacherEnsemble, combine_logits, freeze_leading, soft_targets
from pqcompress.errors import ConfigError
from pqcompress.testing.tiny import TinyConvNet


class Fixed(nn.Module):
    """Returns the same logits for every sample (a stand-in with known outputs)."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def test_mean_is_the_mean_of_logits() -> None:
    ens = TeacherEnsemble([Fixed([3.0, 0.0]), Fixed([0.0, 1.0]), Fixed([0.0, 1.0])], "mean")
    out = ens(torch.zeros(2, 1))
    assert torch.allclose(out, torch.tensor([[1.0, 2 / 3]]).expand(2, -1))
    assert out.argmax(1).tolist() == [0, 0]  # one confident member outweighs two weak ones


def test_vote_follows_the_majority_not_the_confidence() -> None:
    ens = TeacherEnsemble([Fixed([3.0, 0.0]), Fixed([0.0, 1.0]), Fixed([0.0, 1.0])], "vote")
    assert ens(torch.zeros(2, 1)).argmax(1).tolist() == [1, 1]
    shares = soft_targets(ens.member_logits(torch.zeros(1, 1)), "vote")
    assert torch.allclose(shares, torch.tensor([[1 / 3, 2 / 3]]))


def test_vote_ties_go_to_the_higher_mean_probability() -> None:
    z = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.1, 0.0]]])  # one vote each for 0 and 1
    assert combine_logits(z, "vote").argmax(1).item() == 0
    z2 = torch.tensor([[[0.1, 0.0, 0.0], [0.0, 5.0, 0.0]]])
    assert combine_logits(z2, "vote").argmax(1).item() == 1
    assert torch.isfinite(combine_logits(z, "vote")).all()


def test_mean_soft_targets_use_the_temperature() -> None:
    z = torch.tensor([[[2.0, 0.0], [4.0, 0.0]]])
    assert torch.allclose(
        soft_targets(z, "mean", 3.0), torch.softmax(torch.tensor([[1.0, 0.0]]), 1)
    )


def test_members_stay_in_eval_mode_and_get_no_gradients() -> None:
    net = TinyConvNet(num_classes=2)
    ens = TeacherEnsemble({"a": net}, "mean")
    ens.train()
    assert not net.training
    out = ens(torch.randn(2, 1, 8, 8))
    assert not out.requires_grad


def test_bad_combine_and_empty_ensemble_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="combine='median'"):
        TeacherEnsemble([Fixed([0.0])], "median")
    with pytest.raises(ConfigError, match="at least one member"):
        TeacherEnsemble([], "mean")


def test_freeze_leading_freezes_the_first_layers_only() -> None:
    net = TinyConvNet(num_classes=2)  # conv, bn, linear own parameters
    frozen = freeze_leading(net, 2)
    assert frozen == ["features.0", "features.1"]
    assert not net.features[0].weight.requires_grad and not net.features[1].bias.requires_grad
    assert net.classifier[0].weight.requires_grad
    assert freeze_leading(TinyConvNet(num_classes=2), 0.5) == ["features.0"]
    with pytest.raises(ConfigError, match="only 3 layers"):
        freeze_leading(TinyConvNet(num_classes=2), 4)
