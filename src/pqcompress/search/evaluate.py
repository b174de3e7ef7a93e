"""Real evaluations: apply one configuration to the trained model and measure it.

``PostTrainEvaluator`` (spaces ``posttrain`` and custom mappings of PostTrainConfig fields)
prunes / quantizes a copy of the model and measures, on a fixed evaluation subset:

- ``accuracy``: top-1 on the subset (a fraction);
- ``nonzero``: nonzero share of all parameters of the pruned model (before int8);
- ``size``: bytes of the compressed model as saved (a ``.pqz`` for float models, whose sparse
  layouts shrink with pruning; the deflated ``torch.save`` state dict for torch int8 models);
- ``latency``: median seconds of a batch-1 forward over ``latency_repeats`` runs (torch).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import statistics
import tempfile
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset

from pqcompress import codec
from pqcompress.checkpoint import read_run_config, split_seed_of
from pqcompress.codec.sources import load_model
from pqcompress.config import DataConfig, from_dict
from pqcompress.data.batches import evaluation_view
from pqcompress.data.loader import make_loader
from pqcompress.data.registry import build_dataset
from pqcompress.errors import ConfigError
from pqcompress.execute import Job
from pqcompress.posttrain import PostTrainConfig, apply_posttrain
from pqcompress.posttrain.quantize import quantize_dynamic_int8

OBJECTIVES = ("accuracy", "nonzero", "size", "latency")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What an evaluator needs to rebuild itself in a worker process (plain data only)."""

    model: str
    dataset: str
    data: dict[str, Any]
    split: str = "val"
    subset: int | None = 1000
    seed: int = 0
    objectives: tuple[str, ...] = ("accuracy", "nonzero")
    latency_repeats: int = 20
    space: str = "posttrain"
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    factory: str | None = None  # package.module:factory of a .pqz saved from a user's model


def _load(source: str, factory: str | None = None) -> nn.Module:
    model, _ = load_model(source, model=factory)
    return model.eval()


def data_config_for(model: str, data: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
    """The data config (and seed) to evaluate on: a run directory's own (so that ``val`` is
    the split its training held out), updated by ``data``; else ``data``."""
    path = Path(model)
    base: dict[str, Any] = {}
    seed = 0
    if path.is_dir() and (path / "config.yaml").is_file():
        cfg = read_run_config(path) or {}
        base = dict(cfg.get("data") or {})
        inherited = split_seed_of(path, str(cfg.get("dataset")))
        seed = 0 if inherited is None else inherited
    base.update(dict(data or {}))
    return base, seed


def evaluation_split(settings: EvalSettings) -> tuple[Any, Any]:
    """The data bundle and the fixed evaluation subset every evaluation of a search is
    measured on: ``settings.subset`` examples of its ``split``, drawn with its seed (the same
    for the posttrain and pq spaces)."""
    bundle = build_dataset(
        settings.dataset, from_dict(DataConfig, settings.data, "data"), seed=settings.seed
    )
    split = bundle.val if settings.split == "val" else bundle.test
    if split is None or len(split) == 0:
        raise ConfigError(f"dataset {settings.dataset} has no {settings.split} split")
    if settings.subset is not None and settings.subset < len(split):
        g = torch.Generator().manual_seed(settings.seed)
        idx = torch.randperm(len(split), generator=g)[: settings.subset].sort().values
        # a registered dataset may bring any torch Dataset: Subset where it has no select
        split = split.select(idx) if hasattr(split, "select") else Subset(split, idx.tolist())
    return bundle, split


class PostTrainEvaluator:
    """Evaluates PostTrainConfig settings on one trained model (loaded once)."""

    def __init__(self, settings: EvalSettings) -> None:
        bad = [o for o in settings.objectives if o not in OBJECTIVES]
        if bad:
            raise ConfigError(f"objectives {bad} are not accepted; use any of {OBJECTIVES}")
        self.settings = settings
        self.model = _load(settings.model, settings.factory)
        _, split = evaluation_split(settings)
        self.batches = [
            (b[0], b[1]) for b in make_loader(evaluation_view(split), 500, shuffle=False)
        ]
        self.n = sum(int(y.numel()) for _, y in self.batches)
        self.reference = self.accuracy(self.model)

    @torch.no_grad()
    def accuracy(self, model: nn.Module) -> float:
        correct = 0
        for x, y in self.batches:
            correct += int((model(x).argmax(1) == y).sum())
        return correct / self.n

    def reference_measures(self) -> dict[str, float]:
        out = {"accuracy": self.reference, "nonzero": 1.0}
        out["size"] = float(_saved_bytes(self.model, False))
        out["latency"] = _latency(self.model, self.batches[0][0][:1], self.settings.latency_repeats)
        return out

    def __call__(self, config: Mapping[str, Any]) -> dict[str, float]:
        fields = {**self.settings.fixed, **dict(config)}
        cfg = PostTrainConfig(**fields)
        pruned = apply_posttrain(self.model, dataclasses.replace(cfg, dynamic_int8=False))
        runnable = quantize_dynamic_int8(pruned) if cfg.dynamic_int8 else pruned
        out: dict[str, float] = {"accuracy": self.accuracy(runnable)}
        params = list(pruned.parameters())
        total = sum(p.numel() for p in params)
        out["nonzero"] = sum(int(torch.count_nonzero(p)) for p in params) / total
        if "size" in self.settings.objectives:
            out["size"] = float(_saved_bytes(runnable, cfg.dynamic_int8))
        if "latency" in self.settings.objectives:
            out["latency"] = _latency(
                runnable, self.batches[0][0][:1], self.settings.latency_repeats
            )
        return out


def _saved_bytes(model: nn.Module, torch_int8: bool) -> int:
    if torch_int8:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        return len(zlib.compress(buf.getvalue(), 6))

    with tempfile.TemporaryDirectory(prefix="pqc-search-") as tmp:
        path = codec.save(model, Path(tmp) / "m.pqz")
        return path.stat().st_size


@torch.no_grad()
def _latency(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    model(x)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_evaluator(settings: EvalSettings) -> Any:
    if settings.space == "pq":
        from pqcompress.search.pq_evaluate import PQEvaluator

        return PQEvaluator(settings)
    return PostTrainEvaluator(settings)


def evaluate_many(evaluator: Any, configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"objectives": ..., "wall_s": ...}]`` for each configuration, in order."""
    out = []
    for c in configs:
        t0 = time.perf_counter()
        values = evaluator(c)
        out.append({"objectives": values, "wall_s": time.perf_counter() - t0})
    return out


def reference_measures(evaluator: Any) -> dict[str, float]:
    """The unmodified model's measures (accuracy, nonzero = 1, size, latency)."""
    return evaluator.reference_measures()


REFERENCE = "reference"
"""The item that asks a worker for the unmodified model's measures instead of a configuration."""

_EVALUATOR: Any = None  # each worker's evaluator, built once by _setup_worker


def _setup_worker(settings: EvalSettings) -> None:
    global _EVALUATOR
    _EVALUATOR = build_evaluator(settings)


def _evaluate_in_worker(item: Mapping[str, Any] | str) -> dict[str, Any]:
    return _evaluate_with(_EVALUATOR, item)


def _evaluate_with(evaluator: Any, item: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(item, str) and item == REFERENCE:
        return reference_measures(evaluator)
    return evaluate_many(evaluator, [item])[0]


def evaluation_job(settings: EvalSettings, evaluator: Any = None) -> Job:
    """The executor job of a search: each worker builds its evaluator once (the model and the
    evaluation data stay loaded) and then evaluates the configurations it is handed, or
    ``REFERENCE``. A ready ``evaluator`` serves the inline executor only (it stays in this
    process)."""
    if evaluator is not None:
        return Job(fn=functools.partial(_evaluate_with, evaluator))
    return Job(
        fn=_evaluate_in_worker,
        setup=_setup_worker,
        setup_args=(settings,),
        preload=("pqcompress.search.evaluate",),
    )
