"""Surrogate regressors (scikit-learn), scored by cross-validation, one picked per target.

Registry: ``gp`` (Gaussian process, Matern 5/2 + white noise), ``rf`` (random forest),
``et`` (extra trees), ``knn`` (k nearest neighbours, distance-weighted), ``svr`` (RBF SVR on
standardised features and targets), ``mlp`` (two hidden layers of 32), ``poly`` (degree-2
polynomial ridge). Selection metrics (the study's): ``mse`` and ``mape`` (lower is better;
MAPE divides by ``|y| + MAPE_EPS``), ``spearman`` (rank correlation of the cross-validated
predictions with the truth; higher is better), ``rand`` (a seeded random pick).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pqcompress.errors import ConfigError

MAPE_EPS = 1e-3
METRICS = ("mse", "mape", "spearman", "rand")
CV_FOLDS = 5


def _scaled(model: Any) -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), model), transformer=StandardScaler()
    )


def _gp(seed: int, n: int) -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = ConstantKernel() * Matern(nu=2.5) + WhiteKernel(1e-3)
    return GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)


def _rf(seed: int, n: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=50, random_state=seed, n_jobs=1)


def _et(seed: int, n: int) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(n_estimators=50, random_state=seed, n_jobs=1)


def _knn(seed: int, n: int) -> Any:
    from sklearn.neighbors import KNeighborsRegressor

    return KNeighborsRegressor(n_neighbors=max(1, min(5, n - 1)), weights="distance")


def _svr(seed: int, n: int) -> Any:
    from sklearn.svm import SVR

    return _scaled(SVR(C=3.0, epsilon=0.05))


def _mlp(seed: int, n: int) -> Any:
    from sklearn.neural_network import MLPRegressor

    return _scaled(
        MLPRegressor(hidden_layer_sizes=(32, 32), max_iter=1000, random_state=seed, alpha=1e-3)
    )


def _poly(seed: int, n: int) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    return make_pipeline(PolynomialFeatures(2), Ridge(alpha=1.0))


SURROGATES: dict[str, Callable[[int, int], Any]] = {
    "gp": _gp,
    "rf": _rf,
    "et": _et,
    "knn": _knn,
    "svr": _svr,
    "mlp": _mlp,
    "poly": _poly,
}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"selection metric {metric!r} is not accepted; use one of {METRICS}")
    return metric


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The metric of cross-validated predictions, oriented so that **lower is better**."""
    if metric == "mse":
        return float(np.mean((y - pred) ** 2))
    if metric == "mape":
        return float(np.mean(np.abs(y - pred) / (np.abs(y) + MAPE_EPS)))
    from scipy.stats import spearmanr

    if np.ptp(y) == 0 or np.ptp(pred) == 0:
        return 1.0  # no rank information: the worst correlation short of anti-correlation
    rho = spearmanr(y, pred).statistic
    return -float(rho) if np.isfinite(rho) else 1.0


@dataclass
class Pick:
    """The regressor chosen for one target, with every candidate's cross-validated score."""

    target: str
    name: str
    metric: str
    score: float | None
    scores: dict[str, float]
    model: Any

    def record(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "surrogate": self.name,
            "metric": self.metric,
            "score": self.score,
            "scores": self.scores,
        }


def fit_and_select(
    target: str,
    X: np.ndarray,
    y: np.ndarray,
    metric: str,
    *,
    seed: int,
    candidates: tuple[str, ...] = tuple(SURROGATES),
) -> Pick:
    """Score every candidate by ``CV_FOLDS``-fold cross-validation with ``metric`` (``rand``:
    none is scored, one is drawn), refit the winner on all of ``X, y`` and return it."""
    from sklearn.model_selection import KFold, cross_val_predict

    check_metric(metric)
    n = len(y)
    scores: dict[str, float] = {}
    if metric == "rand":
        name = candidates[int(np.random.default_rng(seed).integers(len(candidates)))]
    else:
        folds = KFold(n_splits=max(2, min(CV_FOLDS, n)), shuffle=True, random_state=seed)
        for name in candidates:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings of GP / MLP
                try:
                    pred = cross_val_predict(SURROGATES[name](seed, n), X, y, cv=folds)
                except (ValueError, np.linalg.LinAlgError):
                    continue
            scores[name] = score(metric, y, pred)
        if not scores:
            raise ConfigError(f"no surrogate could be fitted for {target} on {n} points")
        name = min(scores, key=lambda k: (scores[k], k))
    model = SURROGATES[name](seed, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return Pick(target, name, metric, scores.get(name), scores, model)
