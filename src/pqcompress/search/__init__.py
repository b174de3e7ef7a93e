"""Automatic choice of compression settings: a surrogate-assisted constrained multi-objective
search (the search study, docs/method.md §7) and its baselines, on a trained model.

``run_search(SearchSpec.from_yaml(path), "results.db", out="search/")`` runs every algorithm and
repeat of a spec; every real evaluation is a row of the results store (memoised, resumable);
``summary.json`` lists, per algorithm and repeat, the evaluations, the hypervolume and the
feasible front. See docs/search.md.
"""

from __future__ import annotations

from pqcompress.search.pareto import Normaliser, hypervolume, non_dominated
from pqcompress.search.runner import run_search
from pqcompress.search.space import Space, Variable, posttrain_space
from pqcompress.search.spec import AlgorithmSpec, SearchSpec, SurrogateSettings
from pqcompress.search.surrogates import SURROGATES, fit_and_select

__all__ = [
    "SURROGATES",
    "AlgorithmSpec",
    "Normaliser",
    "SearchSpec",
    "Space",
    "SurrogateSettings",
    "Variable",
    "fit_and_select",
    "hypervolume",
    "non_dominated",
    "posttrain_space",
    "run_search",
]
