"""A teacher ensemble (mean of logits or majority vote), its soft targets, and layer freezing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pqcompress.errors import ConfigError

COMBINE = ("mean", "vote")
# vote scores: log of (votes + VOTE_EPS) / (M + C * VOTE_EPS), so that a class without votes
# still has a finite score (the loss stays finite); ties between equal vote counts are broken
# by the members' mean probability, scaled by TIE_BREAK (far below one vote's gap).
VOTE_EPS = 1e-3
TIE_BREAK = 1e-4


def check_combine(combine: str) -> str:
    if combine not in COMBINE:
        raise ConfigError(f"combine={combine!r} is not accepted; use {' or '.join(COMBINE)}")
    return combine


def _stacked(member_logits: torch.Tensor) -> torch.Tensor:
    if member_logits.ndim != 3 or member_logits.shape[1] == 0:
        raise ValueError(
            "member logits must be (batch, members, classes) with at least one member, "
            f"got {tuple(member_logits.shape)}"
        )
    return member_logits.float()


def vote_fractions(member_logits: torch.Tensor) -> torch.Tensor:
    """(B, C) share of members whose arg-max is each class."""
    z = _stacked(member_logits)
    votes = F.one_hot(z.argmax(dim=2), z.shape[2]).to(torch.float32).sum(dim=1)
    return votes / z.shape[1]


def combine_logits(member_logits: torch.Tensor, combine: str = "mean") -> torch.Tensor:
    """(B, C) ensemble scores from (B, M, C) member logits; arg-max = the ensemble's prediction.

    ``mean``: the mean of the members' logits. ``vote``: the log of the (smoothed) vote
    shares, ties broken by the members' mean softmax probability.
    """
    check_combine(combine)
    z = _stacked(member_logits)
    if combine == "mean":
        return z.mean(dim=1)
    members, classes = z.shape[1], z.shape[2]
    votes = vote_fractions(z) * members
    scores = torch.log((votes + VOTE_EPS) / (members + classes * VOTE_EPS))
    return scores + TIE_BREAK * F.softmax(z, dim=2).mean(dim=1)


def soft_targets(
    member_logits: torch.Tensor, combine: str = "mean", temperature: float = 1.0
) -> torch.Tensor:
    """(B, C) teacher distribution for distillation from (B, M, C) member logits.

    ``mean``: ``softmax(mean logits / T)``. ``vote``: the vote shares (a vote has no
    temperature: T is not applied).
    """
    check_combine(combine)
    if combine == "mean":
        return F.softmax(_stacked(member_logits).mean(dim=1) / temperature, dim=1)
    return vote_fractions(member_logits)


class TeacherEnsemble(nn.Module):
    """Members run side by side on the same input; ``forward`` returns combined scores.

    ``members``: a mapping name -> module (or a sequence, named ``teacher0``...). Members are
    put in eval mode and never trained through the ensemble (``forward`` runs under no_grad).
    """

    def __init__(
        self, members: Mapping[str, nn.Module] | Sequence[nn.Module], combine: str = "mean"
    ) -> None:
        super().__init__()
        if isinstance(members, Mapping):
            named = dict(members)
        else:
            named = {f"teacher{i}": m for i, m in enumerate(members)}
        if not named:
            raise ConfigError("a teacher ensemble needs at least one member")
        bad = [n for n in named if not n or "." in n]
        if bad:
            raise ConfigError(f"teacher names must be non-empty and without dots: {bad}")
        self.members = nn.ModuleDict(named)
        self.combine = check_combine(combine)
        self.eval()

    @property
    def names(self) -> list[str]:
        return list(self.members.keys())

    def train(self, mode: bool = True) -> TeacherEnsemble:
        """Members stay in eval mode (BatchNorm statistics and dropout are fixed)."""
        return super().train(False)

    @torch.no_grad()
    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, C) logits of every member."""
        outs = [m(x).float() for m in self.members.values()]
        classes = {o.shape[-1] for o in outs}
        if len(classes) != 1:
            raise ConfigError(f"teachers disagree on the number of classes: {sorted(classes)}")
        return torch.stack(outs, dim=1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine_logits(self.member_logits(x), self.combine)

    def extra_repr(self) -> str:
        return f"combine={self.combine!r}"
