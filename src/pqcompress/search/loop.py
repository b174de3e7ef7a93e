"""The algorithms of a study, each on one repeat: the surrogate loop, C-TAEA on the real
problem, random sampling and Optuna's NSGA-II; all through one :class:`RunContext`.

The context owns the budget and the memo: a configuration already evaluated in this
(algorithm, repeat) is answered from the results store without a real evaluation, and every
new one becomes a row there at once. Every algorithm is seeded by (seed, repeat) and asks for
the same configurations given the same answers, so a killed search is resumed by running it
again: it replays from the store until it reaches the first configuration not yet measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pqcompress import faults
from pqcompress.results.search import SearchStore
from pqcompress.search.pareto import Normaliser, feasible_front
from pqcompress.search.space import Space
from pqcompress.search.spec import AlgorithmSpec, SearchSpec, SurrogateSettings

Log = Callable[[str], None]


@dataclass
class RunContext:
    """One (algorithm, repeat): memoised, budgeted, recorded evaluations."""

    study: str
    algorithm: str
    repeat: int
    space: Space
    norm: Normaliser
    store: SearchStore
    executor: Any
    budget: int
    log: Log = lambda _m: None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    iteration: int = 0
    replayed: int = 0

    def __post_init__(self) -> None:
        self.stored = self.store.evaluations(self.study, self.algorithm, self.repeat)

    @property
    def evaluations(self) -> int:
        return len(self.rows)

    @property
    def remaining(self) -> int:
        return self.budget - len(self.rows)

    def seen(self, config: Mapping[str, Any]) -> bool:
        return self.space.key(config) in self.rows

    def evaluate(self, X: np.ndarray | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Rows for the configurations (vectors or dicts), evaluating at most ``remaining``
        new ones (later new ones get None); memo and store answer the others."""
        configs = [c if isinstance(c, Mapping) else self.space.decode(c) for c in _as_list(X)]
        out: list[dict[str, Any] | None] = [None] * len(configs)
        todo: list[tuple[int, str, Mapping[str, Any]]] = []
        planned: set[str] = set()
        for i, c in enumerate(configs):
            key = self.space.key(c)
            if key in self.rows:
                out[i] = self.rows[key]
            elif key in self.stored and len(self.rows) + len(planned) < self.budget:
                self.rows[key] = self.stored[key]
                self.replayed += 1
                out[i] = self.rows[key]
            elif key not in planned and len(self.rows) + len(planned) < self.budget:
                planned.add(key)
                todo.append((i, key, c))
        results = self.executor.map([c for _, _, c in todo])
        for (_, key, c), res in zip(todo, results):
            row = self._row(key, c, res)
            self.store.add_evaluation(self.study, row)
            self.rows[key] = row
            if os.environ.get(faults.ENV):  # tests only: counting costs a query
                faults.hold("evaluations", str(len(self.store.all_evaluations(self.study))))
        for i, c in enumerate(configs):
            if out[i] is None:
                out[i] = self.rows.get(self.space.key(c))
        return [r for r in out if r is not None]

    def _row(self, key: str, config: Mapping[str, Any], res: Mapping[str, Any]) -> dict[str, Any]:
        objectives = dict(res["objectives"])
        g = self.norm.constraint(objectives)
        return {
            "algorithm": self.algorithm,
            "repeat": self.repeat,
            "key": key,
            "seq": len(self.rows),
            "iteration": self.iteration,
            "variables": dict(config),
            "objectives": objectives,
            "constraints": {"accuracy_min": g},
            "feasible": g <= 0,
            "wall_s": float(res["wall_s"]),
        }

    def minimised(self, row: Mapping[str, Any]) -> np.ndarray:
        return self.norm.vector(row["objectives"])

    def front(self) -> tuple[list[Mapping[str, Any]], float]:
        return feasible_front(list(self.rows.values()), self.norm)

    def checkpoint(self, **extra: Any) -> float:
        """Record this iteration (evaluations so far, hypervolume, overheads)."""
        _, hv = self.front()
        self.store.add_iteration(
            self.study,
            {
                "algorithm": self.algorithm,
                "repeat": self.repeat,
                "iteration": self.iteration,
                "evaluations": self.evaluations,
                "hypervolume": hv,
                **extra,
            },
        )
        self.iteration += 1
        return hv


def _as_list(X: Any) -> list[Any]:
    if isinstance(X, np.ndarray):
        return list(np.atleast_2d(X))
    return list(X)


# --------------------------------------------------------------------------- baselines


def run_random(ctx: RunContext, seed: int) -> None:
    """Uniform samples of the space (options equally likely) until the budget is spent."""
    rng = np.random.default_rng(seed)
    misses = 0
    while ctx.remaining > 0 and misses < 50:
        X = ctx.space.uniform(min(10, ctx.remaining), rng)
        before = ctx.evaluations
        ctx.evaluate(X)
        misses = misses + 1 if ctx.evaluations == before else 0
        ctx.checkpoint()


def _ref_dirs(n_obj: int, pop: int, seed: int) -> np.ndarray:
    from pymoo.util.ref_dirs import get_reference_directions

    if n_obj == 2:
        return get_reference_directions("das-dennis", 2, n_partitions=pop - 1)
    return get_reference_directions("energy", n_obj, pop, seed=seed)


class _Repair:
    """pymoo Repair that rounds the integral coordinates (made lazily: pymoo is optional)."""

    @staticmethod
    def make(space: Space) -> Any:
        from pymoo.core.repair import Repair

        class SpaceRepair(Repair):
            def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
                return space.repair(X)

        return SpaceRepair()


def run_ctaea_real(ctx: RunContext, pop_size: int, generations: int, seed: int) -> None:
    """C-TAEA (pymoo) on the real problem: ``pop_size`` x ``generations`` evaluations."""
    from pymoo.algorithms.moo.ctaea import CTAEA
    from pymoo.core.problem import Problem

    space, n_obj = ctx.space, len(ctx.norm.objectives)
    problem = Problem(
        n_var=len(space.variables), n_obj=n_obj, n_ieq_constr=1, xl=space.xl, xu=space.xu
    )
    algo = CTAEA(
        ref_dirs=_ref_dirs(n_obj, pop_size, seed),
        repair=_Repair.make(space),
        eliminate_duplicates=True,
    )
    algo.setup(problem, termination=("n_gen", generations), seed=seed, verbose=False)
    while algo.has_next() and ctx.remaining > 0:
        pop = algo.ask()
        X = space.repair(pop.get("X"))
        rows = ctx.evaluate(X)
        by_key = {r["key"]: r for r in rows}
        F, G = [], []
        for x in X:
            row = by_key.get(space.key(space.decode(x)))
            if row is None:  # over budget: a point that will never be measured
                F.append([np.inf] * n_obj)
                G.append([np.inf])
            else:
                F.append(ctx.minimised(row))
                G.append([row["constraints"]["accuracy_min"]])
        pop.set("X", X)
        pop.set("F", np.array(F, dtype=float))
        pop.set("G", np.array(G, dtype=float))
        algo.tell(infills=pop)
        ctx.checkpoint()


def run_optuna(ctx: RunContext, pop_size: int, seed: int) -> None:
    """Optuna's NSGA-II sampler with the accuracy constraint (``constraints_func``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # optuna >= 5 takes constraints through Trial.set_constraint; older ones a constraints_func
    native = hasattr(optuna.trial.Trial, "set_constraint")
    sampler = optuna.samplers.NSGAIISampler(
        population_size=pop_size,
        seed=seed,
        **({} if native else {"constraints_func": lambda t: t.user_attrs["constraints"]}),
    )
    study = optuna.create_study(directions=["minimize"] * len(ctx.norm.objectives), sampler=sampler)
    misses = 0
    while ctx.remaining > 0 and misses < 50:
        trial = study.ask()
        config = {}
        for v in ctx.space.variables:
            if v.kind == "choice":
                config[v.name] = trial.suggest_categorical(v.name, list(v.choices))
            elif v.kind == "bool":
                config[v.name] = trial.suggest_categorical(v.name, [False, True])
            elif v.kind == "int":
                config[v.name] = trial.suggest_int(v.name, int(v.low), int(v.high))
            else:
                config[v.name] = round(trial.suggest_float(v.name, v.low, v.high), 6)
        before = ctx.evaluations
        (row,) = ctx.evaluate([config]) or [None]
        misses = misses + 1 if ctx.evaluations == before else 0
        if row is None:
            break
        g = [row["constraints"]["accuracy_min"]]
        if native:
            trial.set_constraint("accuracy_min", g[0])
        else:
            trial.set_user_attr("constraints", g)
        study.tell(trial, list(ctx.minimised(row)))
        if ctx.evaluations % 10 == 0 or ctx.remaining == 0:
            ctx.checkpoint()


# --------------------------------------------------------------------------- surrogate loop


def most_diverse(candidates: np.ndarray, reference: np.ndarray, k: int) -> list[int]:
    """Greedy max-min: repeatedly the candidate farthest (Euclidean, in surrogate feature
    space) from the evaluated points and the candidates already chosen."""
    chosen: list[int] = []
    pool = list(range(len(candidates)))
    anchors = reference.copy() if len(reference) else np.empty((0, candidates.shape[1]))
    while pool and len(chosen) < k:
        if len(anchors):
            d = np.min(np.linalg.norm(candidates[pool][:, None, :] - anchors[None], axis=2), axis=1)
        else:
            d = np.zeros(len(pool))
        best = pool[int(np.argmax(d))]
        chosen.append(best)
        pool.remove(best)
        anchors = np.vstack([anchors, candidates[best][None]])
    return chosen


def run_surrogate(
    ctx: RunContext, spec: SearchSpec, settings: SurrogateSettings, seed: int
) -> None:
    """The study's loop: Latin hypercube, then (fit, pick, optimise the surrogate problem
    with C-TAEA, evaluate ``infill`` diverse feasible non-dominated points) until the budget."""
    space = ctx.space
    ctx.evaluate(space.latin_hypercube(spec.initial, seed))
    ctx.checkpoint()
    rng = np.random.default_rng(seed)
    while ctx.remaining > 0:
        rows = list(ctx.rows.values())
        t0 = time.perf_counter()
        picks, cpick = _fit_targets(ctx, rows, settings, seed + ctx.iteration)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        X, F, G = _optimise_surrogate(ctx, picks, cpick, settings, seed)
        optimize_s = time.perf_counter() - t1
        new, front_points = _infill_candidates(ctx, X, F, G, spec.infill, rng)
        evaluated = space.features([r["variables"] for r in rows])
        chosen = most_diverse(space.features(new), evaluated, min(spec.infill, ctx.remaining))
        ctx.evaluate([new[i] for i in chosen])
        ctx.checkpoint(
            fit_s=fit_s,
            optimize_s=optimize_s,
            picks=[p.record() for p in picks]
            + [cpick.record()]
            + [{"surrogate_front_points": front_points}],
        )


def _fit_targets(
    ctx: RunContext, rows: list[dict[str, Any]], settings: SurrogateSettings, seed: int
) -> tuple[list[Any], Any]:
    """One picked regressor per (minimised, normalised) objective, and one for the constraint."""
    from pqcompress.search.surrogates import fit_and_select

    Xf = ctx.space.features([r["variables"] for r in rows])
    picks = []
    for j, name in enumerate(ctx.norm.objectives):
        y = np.array([ctx.minimised(r)[j] for r in rows])
        metric = settings.metric_for("objectives", name)
        picks.append(fit_and_select(name, Xf, y, metric, seed=seed, candidates=settings.candidates))
    g = np.array([r["constraints"]["accuracy_min"] for r in rows])
    metric = settings.metric_for("constraints", "accuracy_min")
    cpick = fit_and_select("accuracy_min", Xf, g, metric, seed=seed, candidates=settings.candidates)
    return picks, cpick


def _surrogate_problem(space: Space, n_obj: int, models: list[Any], constraint: Any) -> Any:
    """A pymoo Problem whose objectives and constraint are the fitted regressors' predictions."""
    from pymoo.core.problem import Problem

    class SurrogateProblem(Problem):
        def __init__(self) -> None:
            super().__init__(
                n_var=len(space.variables), n_obj=n_obj, n_ieq_constr=1, xl=space.xl, xu=space.xu
            )

        def _evaluate(self, X: np.ndarray, out: dict[str, Any], *a: Any, **k: Any) -> None:
            feats = space.features([space.decode(x) for x in space.repair(X)])
            out["F"] = np.column_stack([m.predict(feats) for m in models])
            out["G"] = constraint.predict(feats)[:, None]

    return SurrogateProblem()


def _optimise_surrogate(
    ctx: RunContext, picks: list[Any], cpick: Any, settings: SurrogateSettings, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C-TAEA on the surrogate problem; its final population (X repaired, F, G flat)."""
    from pymoo.algorithms.moo.ctaea import CTAEA
    from pymoo.optimize import minimize

    opt = settings.optimizer
    n_obj = len(ctx.norm.objectives)
    algo = CTAEA(
        ref_dirs=_ref_dirs(n_obj, opt.pop_size, seed),
        repair=_Repair.make(ctx.space),
        eliminate_duplicates=True,
    )
    problem = _surrogate_problem(ctx.space, n_obj, [p.model for p in picks], cpick.model)
    res = minimize(
        problem, algo, ("n_gen", opt.generations), seed=seed + ctx.iteration, verbose=False
    )
    pop = res.pop
    return ctx.space.repair(pop.get("X")), pop.get("F"), pop.get("G").reshape(-1)


def _infill_candidates(
    ctx: RunContext,
    X: np.ndarray,
    F: np.ndarray,
    G: np.ndarray,
    need: int,
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], int]:
    """(unseen configurations the surrogates call feasible and non-dominated, topped up with
    unseen uniform samples when fewer than ``need``; how many the surrogate front had)."""
    space = ctx.space
    cand_idx = [int(i) for i in np.where(G <= 0)[0]]
    if cand_idx:
        cand_idx = [cand_idx[i] for i in _nd(F[cand_idx])]
    new: list[dict[str, Any]] = []
    keys: set[str] = set()

    def offer(c: dict[str, Any]) -> None:
        k = space.key(c)
        if not ctx.seen(c) and k not in keys:
            keys.add(k)
            new.append(c)

    for i in cand_idx:
        offer(space.decode(X[i]))
    if len(new) < need:
        for x in space.uniform(50, rng):
            offer(space.decode(x))
    return new, len(cand_idx)


def _nd(F: np.ndarray) -> list[int]:
    from pqcompress.search.pareto import non_dominated

    return list(non_dominated(F))


Runner = Callable[[RunContext, SearchSpec, AlgorithmSpec, int], None]

# the search algorithms by name (``algorithm:`` of a spec): a new one is one function and one
# entry here (and its name in ``spec.ALGORITHMS``, which validates specs before anything runs)
ALGORITHM_RUNNERS: dict[str, Runner] = {
    "surrogate": lambda ctx, spec, algo, seed: run_surrogate(
        ctx, spec, algo.surrogate or spec.surrogate, seed
    ),
    "ctaea": lambda ctx, spec, algo, seed: run_ctaea_real(
        ctx, algo.pop_size, algo.generations or max(1, spec.budget // algo.pop_size), seed
    ),
    "optuna": lambda ctx, spec, algo, seed: run_optuna(ctx, algo.pop_size, seed),
    "random": lambda ctx, spec, algo, seed: run_random(ctx, seed),
}


def run_algorithm(ctx: RunContext, spec: SearchSpec, algo: AlgorithmSpec, seed: int) -> None:
    ALGORITHM_RUNNERS[algo.algorithm](ctx, spec, algo, seed)
