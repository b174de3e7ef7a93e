"""Hinton's distillation loss against hand-computed values, its options and its errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pqcompress.distill import DistillationLoss, distillation_loss
from pqcompress.errors import ConfigError


def test_hand_computed_case() -> None:
    # T = 2; teacher logits (2 ln 3, 0) -> p_T = softmax(ln 3, 0) = (3/4, 1/4); student (0, 0)
    # -> q_T = (1/2, 1/2). KL = 3/4 ln(3/2) + 1/4 ln(1/2); soft = 0.9 * T^2 * KL;
    # hard = 0.1 * CE((0, 0), class 0) = 0.1 ln 2.
    student = torch.zeros(1, 2)
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    expected = 0.9 * 4 * kl + 0.1 * math.log(2.0)
    got = distillation_loss(student, teacher, torch.tensor([0]), temperature=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    no_t2 = distillation_loss(student, teacher, torch.tensor([0]), temperature=2.0, t_squared=False)
    assert no_t2.item() == pytest.approx(0.9 * kl + 0.1 * math.log(2.0), rel=1e-6)


def test_equals_kl_div_plus_cross_entropy_on_random_batches() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    T = 3.0
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
    ref = 0.7 * T * T * kl + 0.3 * F.cross_entropy(s, y)
    loss = DistillationLoss(T, 0.7, 0.3)(s, t, y)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_zero_when_student_matches_teacher_and_no_hard_term() -> None:
    z = torch.randn(4, 3)
    assert distillation_loss(z, z.clone(), None, hard_weight=0.0).item() == pytest.approx(
        0, abs=1e-6
    )


def test_teacher_probabilities_with_zeros_stay_finite() -> None:
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])  # vote shares
    loss = distillation_loss(torch.randn(2, 3), probs, torch.tensor([0, 1]), teacher_probs=True)
    assert torch.isfinite(loss)


def test_gradient_flows_to_the_student_only() -> None:
    s = torch.randn(3, 2, requires_grad=True)
    t = torch.randn(3, 2, requires_grad=True)
    distillation_loss(s, t, torch.tensor([0, 1, 0])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"soft_weight": -1.0}, "soft_weight"),
        ({"soft_weight": 0.0, "hard_weight": 0.0}, "nothing to learn"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        DistillationLoss(**kwargs)


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match=r"teacher \(2, 3\) and student \(2, 2\) differ"):
        distillation_loss(torch.zeros(2, 2), torch.zeros(2, 3), torch.tensor([0, 1]))
