"""The compressor: P->Q on a model's tensors after every optimizer step (or per epoch, or once).

Usage::

    comp = Compressor(model, CompressionConfig(alpha=0.5, bits=4))
    for x, y in loader:
        loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
        comp.step()
    comp.epoch_end()

``update="inplace"`` (the studies): the optimizer updates the compressed weights themselves
and each application re-compresses them. ``update="latent"``: float weights are kept as
``param + residual``; the parameter holds the compressed tensor (what forward sees), the
optimizer's update lands on it and is folded into the float weights at the next application
(a straight-through estimator: the gradient w.r.t. the compressed weights updates the float
ones).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from pqcompress.aware.policy import Target, select_targets
from pqcompress.config import CompressionConfig
from pqcompress.errors import ConfigError, PQCError
from pqcompress.ops.fused import Applied, NonFiniteError, compress_
from pqcompress.ops.pq import PQResult, codes_from_values

STATE_VERSION = 1


class DivergedError(PQCError):
    """Weights became NaN/inf during training, so they cannot be compressed."""


@dataclass(frozen=True)
class LayerStats:
    """Per-tensor record after the latest application."""

    name: str
    module_type: str
    kind: str
    numel: int
    nonzero: int
    sparsity: float
    density: float
    levels: int | None
    threshold: float | None
    scale: float | None
    alpha: float
    bits: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Compressor:
    """Applies prune-then-quantize to the selected tensors of ``model``.

    Attach once, call :meth:`step` after every ``optimizer.step()`` and :meth:`epoch_end`
    at the end of each epoch; ``config.schedule`` decides which call compresses.
    """

    def __init__(self, model: nn.Module, config: CompressionConfig | None = None) -> None:
        self.model = model
        self.config = config if config is not None else CompressionConfig()
        self.targets: list[Target] = select_targets(model, self.config)
        if not self.targets:
            raise ConfigError(
                "no tensor of the model matches the compression settings "
                f"(layer_types={list(self.config.layer_types)}, include={list(self.config.include)}, "
                f"exclude={list(self.config.exclude)}); nothing would be compressed"
            )
        self.latent = self.config.update == "latent"
        self.residuals: dict[str, torch.Tensor] = {}
        if self.latent:
            self.residuals = {
                t.name: torch.zeros_like(t.param.data)
                for t in self.targets
                if t.spec.kind != "none"
            }
        self.applied: dict[str, Applied] = {}
        self.steps = 0
        self.epochs = 0
        self.applications = 0
        self.time_s = 0.0
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ schedule
    def step(self) -> None:
        """Call after every optimizer step; compresses when ``schedule == "step"``."""
        self.steps += 1
        if self.config.schedule == "step":
            self._apply()

    def epoch_end(self) -> None:
        """Call at the end of each epoch; compresses when ``schedule == "epoch"``."""
        self.epochs += 1
        if self.config.schedule == "epoch":
            self._apply()

    def apply(self) -> None:
        """Compress now, whatever the schedule (post-training compression)."""
        self._apply()

    def _apply(self) -> None:
        start = time.perf_counter()
        cfg = self.config
        gen = self._torch_generator() if cfg.rounding == "stochastic" else None
        for index, target in enumerate(self.targets):
            if target.spec.kind == "none":
                continue
            residual = self.residuals.get(target.name)
            try:
                self.applied[target.name] = compress_(
                    target.param.data,
                    residual,
                    target.spec,
                    seed=_mix(cfg.seed, self.applications, index),
                    backend=cfg.backend,
                    generator=gen,
                )
            except NonFiniteError:
                raise DivergedError(
                    f"tensor '{target.name}' holds NaN or inf after step {self.steps}: training "
                    "diverged (try a lower learning rate); it was left uncompressed"
                ) from None
        self.applications += 1
        self.time_s += time.perf_counter() - start

    def _torch_generator(self) -> torch.Generator:
        if self._generator is None:
            device = self.targets[0].param.device
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.config.seed)
        return self._generator

    # ------------------------------------------------------------------ reporting
    def density(self) -> float:
        """Fraction of nonzero elements over all compressed tensors."""
        total = sum(t.param.numel() for t in self.targets)
        nonzero = sum(int(torch.count_nonzero(t.param.detach())) for t in self.targets)
        return nonzero / total if total else 1.0

    def sparsity(self) -> float:
        return 1.0 - self.density()

    def stats(self, levels: bool = True) -> list[LayerStats]:
        """Per-tensor records: sparsity, distinct levels, threshold and scale of the latest
        application. ``levels`` counts distinct values (None for float tensors)."""
        out = []
        for t in self.targets:
            p = t.param.detach()
            nonzero = int(torch.count_nonzero(p))
            applied = self.applied.get(t.name)
            count = None
            if levels and applied is not None and t.spec.kind not in ("prune", "none"):
                count = int(torch.unique(p).numel())
            out.append(
                LayerStats(
                    name=t.name,
                    module_type=t.module_type,
                    kind=t.spec.kind,
                    numel=p.numel(),
                    nonzero=nonzero,
                    sparsity=1.0 - nonzero / max(p.numel(), 1),
                    density=nonzero / max(p.numel(), 1),
                    levels=count,
                    threshold=applied.threshold if applied else None,
                    scale=applied.scale if applied else None,
                    alpha=t.alpha,
                    bits=t.bits,
                )
            )
        return out

    def compressed(self, name: str) -> PQResult:
        """Codes and parameters that reproduce tensor ``name`` exactly (for export)."""
        target = next((t for t in self.targets if t.name == name), None)
        if target is None:
            raise KeyError(f"'{name}' is not a compressed tensor; compressed: {self.names()}")
        applied = self.applied.get(name)
        values = target.param.detach().float().clone()
        kind = target.spec.kind
        if kind == "none":
            return PQResult(values, None, kind, 32, 0.0, 0.0)
        if applied is None:
            raise ValueError(f"'{name}' has not been compressed yet; call apply() first")
        codes = None
        if kind not in ("prune", "none"):
            codes = codes_from_values(values, kind, target.bits, applied.scale, applied.threshold)
        return PQResult(values, codes, kind, target.bits, applied.scale, applied.threshold)

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def latent_weights(self) -> dict[str, torch.Tensor]:
        """Float weights (param + residual in latent mode; the params themselves otherwise)."""
        return {
            t.name: t.param.detach() + self.residuals[t.name]
            if self.latent
            else t.param.detach().clone()
            for t in self.targets
        }

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Counters, latest parameters, latent residuals and RNG state (tensors and plain data)."""
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "steps": self.steps,
            "epochs": self.epochs,
            "applications": self.applications,
            "time_s": self.time_s,
            "applied": {k: asdict(v) for k, v in self.applied.items()},
            "residuals": {k: v.clone() for k, v in self.residuals.items()},
        }
        if self._generator is not None:
            state["generator"] = self._generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"compressor state version {state.get('version')!r} is not {STATE_VERSION}"
            )
        self.steps = int(state["steps"])
        self.epochs = int(state["epochs"])
        self.applications = int(state["applications"])
        self.time_s = float(state.get("time_s", 0.0))
        self.applied = {k: Applied(**v) for k, v in state["applied"].items()}
        if self.latent:
            missing = set(self.residuals) - set(state["residuals"])
            if missing:
                raise ValueError(f"compressor state lacks latent weights for {sorted(missing)}")
            for k, v in state["residuals"].items():
                self.residuals[k].copy_(v)
        if "generator" in state:
            self._torch_generator().set_state(state["generator"])


def _mix(seed: int, application: int, index: int) -> int:
    """A 64-bit seed per (config seed, application, tensor) for the stochastic kernels."""
    x = seed * 0x9E3779B97F4A7C15 + application * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB
    return x & 0xFFFFFFFFFFFFFFFF
