"""The ``pq`` space (beyond the study): alpha and bits per layer group (conv, linear) and the
form, each evaluation a short P->Q fine-tuning of the trained model, measured as it would be
served.

One evaluation: copy the trained model, fine-tune it for ``pq.steps`` optimizer steps with
prune-then-quantize after every step (conv layers at ``conv_alpha``/``conv_bits``, linear
layers at ``linear_alpha``/``linear_bits``), export it to ``.pqz`` (embedding the ONNX graph,
int8 when every compressed tensor allows it) and measure on the fixed evaluation subset:
``accuracy`` of the loaded file, ``nonzero`` share of its parameters, ``size`` in bytes of the
``.pqz``, and ``latency``: the median batch-1 time of ONNX Runtime (1 thread) running the
graph ``pqcompress serve`` would run. So a user can ask "the smallest model over 85% that
answers in under N ms".

``pq:`` options of the spec: ``steps`` (default 50), ``lr`` (0.01), ``batch_size`` (64),
``optimizer`` (sgd), ``bits`` (the choices, default [2, 3, 4, 8]), ``alpha_max`` (1.5),
``forms`` (["exact", "uniform"]), ``layer_bits`` (module names or fnmatch patterns whose
bits the search chooses on their own, e.g. the first and last layer: ``["features.0",
"classifier.*"]``; each adds a variable ``bits@<pattern>``; the group's alpha applies).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pqcompress import codec
from pqcompress.codec import portable
from pqcompress.codec.sources import load_model, run_factory
from pqcompress.config import (
    CompressionConfig,
    DataConfig,
    ExperimentConfig,
    LayerOverride,
    TrainConfig,
    from_dict,
)
from pqcompress.data.batches import evaluation_view, input_batches
from pqcompress.data.loader import make_loader
from pqcompress.errors import ConfigError
from pqcompress.inputspec import example_arrays
from pqcompress.metrics.classification import evaluate_model
from pqcompress.search.evaluate import evaluation_split
from pqcompress.search.space import Space, Variable
from pqcompress.train.trainer import Trainer

DEFAULTS: dict[str, Any] = {
    "steps": 50,
    "lr": 0.01,
    "batch_size": 64,
    "optimizer": "sgd",
    "bits": [2, 3, 4, 8],
    "alpha_max": 1.5,
    "forms": ["exact", "uniform"],
    "layer_bits": [],
}


def pq_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"pq: unknown options {sorted(unknown)}; accepted: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **dict(options)}
    if not isinstance(out["steps"], int) or out["steps"] < 1:
        raise ConfigError(f"pq.steps={out['steps']!r} must be an integer >= 1")
    if not out["bits"] or any(b not in (2, 3, 4, 5, 6, 7, 8, 16) for b in out["bits"]):
        raise ConfigError(f"pq.bits={out['bits']!r}: choose among 2..8 and 16")
    layers = out["layer_bits"]
    if not isinstance(layers, list) or not all(isinstance(p, str) and p for p in layers):
        raise ConfigError(
            f"pq.layer_bits={layers!r} must be a list of module names or fnmatch patterns, "
            "e.g. ['features.0', 'classifier.*']"
        )
    return out


def pq_space(options: Mapping[str, Any]) -> Space:
    o = pq_options(options)
    bits = tuple(int(b) for b in o["bits"])
    variables = [
        Variable("conv_alpha", "float", 0.0, float(o["alpha_max"])),
        Variable("linear_alpha", "float", 0.0, float(o["alpha_max"])),
        Variable("conv_bits", "choice", choices=bits) if len(bits) > 1 else None,
        Variable("linear_bits", "choice", choices=bits) if len(bits) > 1 else None,
        Variable("form", "choice", choices=tuple(o["forms"])) if len(o["forms"]) > 1 else None,
        # per-layer bits: a choice for each named layer (first match wins over the groups)
        *(
            Variable(f"bits@{pattern}", "choice", choices=bits) if len(bits) > 1 else None
            for pattern in o["layer_bits"]
        ),
    ]
    fixed = {"conv_bits": bits[0], "linear_bits": bits[0], "form": o["forms"][0]}
    fixed.update({f"bits@{pattern}": bits[0] for pattern in o["layer_bits"]})
    return Space("pq", tuple(v for v in variables if v is not None), fixed)


class PQEvaluator:
    """Fine-tunes under P->Q and measures the exported file (see the module docstring)."""

    def __init__(self, settings: Any) -> None:
        import dataclasses

        self.settings = settings
        self.options = pq_options(settings.fixed.get("pq") or {})
        self.space = pq_space(self.options)

        self.model, self.manifest = load_model(settings.model, model=settings.factory)
        spec = self.manifest.get("model") or {}
        if not spec.get("name") or spec.get("name") == "custom":
            raise ConfigError(
                "space: pq needs a model it can rebuild: a registry model or your own "
                "package.module:factory (a run directory, or its .pqz with factory: in the spec)"
            )
        # a user's own model is rebuilt from its factory (named by the run or the spec)
        self.factory = settings.factory or run_factory(self.manifest)
        self.inputs = spec.get("inputs")
        bundle, split = evaluation_split(settings)
        self.bundle = dataclasses.replace(bundle, val=None, test=split)
        self.reference = self._accuracy(self.model)

    def _accuracy(self, model: torch.nn.Module) -> float:
        loader = make_loader(evaluation_view(self.bundle.test), 500, shuffle=False)
        return float(evaluate_model(model, loader, "cpu")["accuracy"])

    def _latency(self, pqz: Path) -> float:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1

        session = ort.InferenceSession(portable.onnx_model_bytes(pqz), opts)
        used = {i.name for i in session.get_inputs()}
        sizes = {d: 8 for s in self.bundle.input_specs() for d in s.shape[1:] if isinstance(d, str)}
        feed = {
            k: v
            for k, v in example_arrays(self.bundle.input_specs(), sizes, batch=1).items()
            if k in used
        }
        session.run(None, feed)
        times = []
        for _ in range(max(1, self.settings.latency_repeats)):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def reference_measures(self) -> dict[str, float]:
        with tempfile.TemporaryDirectory(prefix="pqc-pq-") as tmp:
            path = Path(tmp) / "ref.pqz"
            spec = self.manifest.get("model") or {}
            codec.save(
                self.model, path, model_name=spec.get("name"), model_args=spec.get("model_args"),
                num_classes=spec.get("num_classes"),
                input_shape=None if self.inputs else spec.get("input_shape"),
                inputs=self.inputs, onnx="float32",
            )  # fmt: skip
            return {
                "accuracy": self.reference,
                "nonzero": 1.0,
                "size": float(path.stat().st_size),
                "latency": self._latency(path),
            }

    def compression(self, config: Mapping[str, Any]) -> Any:
        from fnmatch import fnmatchcase

        c = {**self.space.fixed, **dict(config)}
        linear = [n for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)]
        named = []  # pq.layer_bits: their own bits, their group's alpha; before the groups
        for pattern in self.options["layer_bits"]:
            is_linear = any(fnmatchcase(n, pattern) for n in linear)
            alpha = c["linear_alpha"] if is_linear else c["conv_alpha"]
            named.append(
                LayerOverride(pattern=pattern, alpha=float(alpha), bits=int(c[f"bits@{pattern}"]))
            )
        overrides = tuple(named) + tuple(
            LayerOverride(pattern=n, alpha=float(c["linear_alpha"]), bits=int(c["linear_bits"]))
            for n in linear
        )
        return CompressionConfig(
            alpha=float(c["conv_alpha"]),
            bits=int(c["conv_bits"]),
            form=str(c["form"]),
            overrides=overrides,
        )

    def __call__(self, config: Mapping[str, Any]) -> dict[str, float]:
        import copy

        o = self.options
        comp = self.compression(config)
        model = copy.deepcopy(self.model).train()
        train_cfg = TrainConfig(
            epochs=1,
            batch_size=int(o["batch_size"]),
            optimizer=o["optimizer"],
            lr=float(o["lr"]),
            max_steps_per_epoch=int(o["steps"]),
            seed=self.settings.seed,
            threads=torch.get_num_threads(),
        )
        with tempfile.TemporaryDirectory(prefix="pqc-pq-") as tmp:
            run = Path(tmp) / "run"
            trainer = Trainer(
                model, self.bundle, train_cfg, comp, run, progress=False,
                config_dict=self._experiment(train_cfg, comp),
            )  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):  # its epoch line: not the search's
                trainer.fit()
            pqz = codec.export_run(
                run, Path(tmp) / "m.pqz", which="last", onnx="auto", calibration=self._calibration()
            )
            loaded = codec.load(pqz, model=self.factory)
            params = list(loaded.parameters())
            total = sum(p.numel() for p in params)
            return {
                "accuracy": self._accuracy(loaded),
                "nonzero": sum(int(torch.count_nonzero(p)) for p in params) / total,
                "size": float(pqz.stat().st_size),
                "latency": self._latency(pqz),
            }

    def _experiment(self, train_cfg: Any, comp: Any) -> dict[str, Any]:
        spec = self.manifest.get("model") or {}
        return ExperimentConfig(
            model=str(spec["name"]),
            dataset=self.settings.dataset,
            model_args=dict(spec.get("model_args") or {}),
            data=from_dict(DataConfig, self.settings.data, "data"),
            train=train_cfg,
            compression=comp,
        ).to_dict()

    def _calibration(self) -> list[torch.Tensor]:
        loader = make_loader(evaluation_view(self.bundle.train), 32, shuffle=True, seed=0)
        return input_batches(loader, 4)
