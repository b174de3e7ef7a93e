"""Hypervolume against hand-computed cases, fronts, spaces, surrogates and diverse infill."""

from __future__ import annotations

import numpy as np
import pytest

from pqcompress.search.loop import most_diverse
from pqcompress.search.pareto import Normaliser, feasible_front, hypervolume, non_dominated
from pqcompress.search.space import posttrain_space
from pqcompress.search.surrogates import SURROGATES, fit_and_select, score


def test_hypervolume_of_hand_computed_fronts() -> None:
    pytest.importorskip("pymoo")  # the hypervolume is pymoo's
    # one point (0.5, 0.5) under reference (1, 1): a 0.5 x 0.5 square
    assert hypervolume(np.array([[0.5, 0.5]]), [1, 1]) == pytest.approx(0.25)
    # staircase (0.2, 0.6), (0.5, 0.3): 0.8*0.4 + 0.5*0.3 = 0.32 + 0.15 = 0.47
    assert hypervolume(np.array([[0.2, 0.6], [0.5, 0.3]]), [1, 1]) == pytest.approx(0.47)
    # a dominated point adds nothing; a point beyond the reference counts nothing
    pts = np.array([[0.2, 0.6], [0.5, 0.3], [0.6, 0.7], [1.5, 0.1]])
    assert hypervolume(pts, [1, 1]) == pytest.approx(0.47)
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0


def test_non_dominated_keeps_one_of_equal_points() -> None:
    pts = np.array([[0.2, 0.6], [0.5, 0.3], [0.2, 0.6], [0.6, 0.7]])
    assert non_dominated(pts).tolist() == [0, 1]


def test_normaliser_and_infeasible_points_never_on_the_front() -> None:
    pytest.importorskip("pymoo")  # the front's hypervolume is pymoo's
    norm = Normaliser(("accuracy", "nonzero"), 0.8, {"accuracy": 0.9})
    assert norm.vector({"accuracy": 0.9, "nonzero": 0.5}).tolist() == pytest.approx([0.5, 0.5])
    assert norm.constraint({"accuracy": 0.75}) == pytest.approx(0.05)
    rows = [
        {"objectives": {"accuracy": 0.9, "nonzero": 0.5}, "feasible": True},
        {"objectives": {"accuracy": 0.79, "nonzero": 0.01}, "feasible": False},
    ]
    front, hv = feasible_front(rows, norm)
    assert front == rows[:1] and hv == pytest.approx(0.25)


def test_space_repair_decode_and_features() -> None:
    space = posttrain_space()
    X = space.repair(np.array([[1.7, -3, 0.5, 2.0, 0.2, 1.6, 0.6]]))
    config = space.decode(X[0])
    assert config == {
        "linear_layers": "all",
        "conv_layers": "none",
        "linear_amount": 0.5,
        "conv_amount": 0.99,
        "linear_params": "biases",
        "conv_params": "both",
        "dynamic_int8": True,
    }
    feats = space.features([config])
    assert feats.shape == (1, 3 + 3 + 1 + 1 + 3 + 3 + 1)  # one-hot choices
    assert space.encode(config).tolist() == X[0].tolist()
    lhs = space.latin_hypercube(30, seed=1)
    assert {space.decode(x)["conv_layers"] for x in lhs} == {"none", "random", "all"}


def test_every_surrogate_fits_and_the_pick_is_the_best_scored() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 4))
    y = 2 * X[:, 0] + 0.01 * rng.random(30)
    pick = fit_and_select("t", X, y, "mse", seed=0)
    assert set(pick.scores) == set(SURROGATES)
    assert pick.name == min(pick.scores, key=pick.scores.get)
    assert pick.model.predict(X[:2]).shape == (2,)
    rand = fit_and_select("t", X, y, "rand", seed=3)
    assert rand.scores == {} and rand.name in SURROGATES


def test_selection_scores_are_lower_is_better() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert score("spearman", y, y) == pytest.approx(-1.0)
    assert score("spearman", y, -y) == pytest.approx(1.0)
    assert score("mape", y, y) == 0.0 and score("mse", y, y + 1) == 1.0


def test_most_diverse_takes_the_farthest_points_first() -> None:
    evaluated = np.array([[0.0, 0.0]])
    cands = np.array([[0.1, 0.0], [1.0, 1.0], [0.9, 1.0], [0.0, 1.0]])
    assert most_diverse(cands, evaluated, 2) == [1, 3]


def test_the_evaluation_subset_is_fixed_and_works_on_any_torch_dataset() -> None:
    """Both search spaces measure on ``evaluation_split``: ``subset`` examples drawn with the
    seed, the same every time; a registered dataset whose split is a plain torch Dataset
    (no ``select``) is subset too (it used to be measured whole)."""
    import torch
    from torch.utils.data import TensorDataset

    from pqcompress.data import DataBundle, available_datasets, register_dataset
    from pqcompress.errors import ConfigError
    from pqcompress.search.evaluate import EvalSettings, evaluation_split

    if "plain_torch_split" not in available_datasets():

        @register_dataset("plain_torch_split")
        def build(cfg, *, seed: int = 0) -> DataBundle:
            data = TensorDataset(torch.randn(50, 1, 4), torch.arange(50) % 2)
            return DataBundle("plain_torch_split", data, None, data, 2, (1, 4), ["a", "b"])

    settings = EvalSettings(model="m", dataset="plain_torch_split", data={}, split="test", subset=7)
    _, first = evaluation_split(settings)
    _, again = evaluation_split(settings)
    labels = [int(first[i][1]) for i in range(len(first))]
    assert len(first) == 7 and labels == [int(again[i][1]) for i in range(7)]
    _, digits = evaluation_split(
        EvalSettings(model="m", dataset="digits", data={"val_fraction": 0.2}, subset=100)
    )
    assert len(digits) == 100 and type(digits).__name__ == "ArrayDataset"
    with pytest.raises(ConfigError, match="has no val split"):
        evaluation_split(EvalSettings(model="m", dataset="plain_torch_split", data={}))
