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

Reaching a density (docs/compression.md §4): ``mask="sticky"`` keeps a weight that the
threshold pruned at zero for good (its latent value and later updates are dropped);
``ramp_steps`` grows the threshold over that many optimizer steps with Zhu & Gupta's cubic
schedule; ``target_density`` solves, at each application, for the one alpha shared by all
layers whose total density meets the target (at the end of the ramp).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from pqcompress.aware import channels as chan
from pqcompress.aware.fused_optim import attach_step_hooks
from pqcompress.aware.policy import Coverage, Target, coverage, select_targets
from pqcompress.config import CompressionConfig
from pqcompress.cpus import cpu_budget
from pqcompress.errors import ConfigError, DivergedError
from pqcompress.ops.device import DeviceApplied
from pqcompress.ops.fused import Applied, FusedUpdate, NonFiniteError, compress_, numba_eligible
from pqcompress.ops.pq import PQResult, codes_from_values, grid_collapse
from pqcompress.ops.prune import cubic_ramp, layer_std, solve_density, solved_keep
from pqcompress.unwrap import unwrap

STATE_VERSION = 1


_log = logging.getLogger("pqcompress.aware")


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
    applied_alpha: float | None = None  # the alpha of the latest application (ramp, solved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Compressor:
    """Applies prune-then-quantize to the selected tensors of ``model``.

    Attach once, call :meth:`step` after every ``optimizer.step()`` and :meth:`epoch_end`
    at the end of each epoch; ``config.schedule`` decides which call compresses.
    """

    # target_density: re-solve the shared alpha every this many step applications (the
    # weights move little in between; a solve samples up to 2^18 weights, about 5 ms)
    SOLVE_EVERY = 8
    # device path (GPU): whether the weights stayed finite is read back every this many
    # step applications, the one synchronisation of the pass
    CHECK_EVERY = 16

    def __init__(
        self,
        model: nn.Module,
        config: CompressionConfig | None = None,
        *,
        example_inputs: Any = None,
        fuse_steps: bool = True,
        announce: bool = True,
    ) -> None:
        """``example_inputs`` (a tensor, a tuple of inputs or a dict of keyword inputs) is
        what ``granularity="channel"`` traces the model with to find its coupled channels;
        without it the first forward call's inputs are taken.

        ``fuse_steps`` (every-step schedule): the steps of a ``torch.optim.SGD``, ``Adam`` or
        ``AdamW`` holding every compressed tensor run fused with the applications, through
        torch's optimizer step hooks (``aware.fused_optim.attach_step_hooks``): the loop
        ``opt.step(); comp.step()`` stays as it is, and ``comp.step()`` only closes the step.
        ``False`` keeps the optimizer's own step and a separate pass.

        ``announce`` logs what is compressed and what is left out, and warns of a grid that
        rounds most weights to zero; ``False`` where a finished run's compressor is rebuilt
        (an export): the run said it when it trained."""
        self.model = unwrap(model)  # names of the plain model, whatever wraps it
        _refuse_sharded(self.model)
        self.config = config if config is not None else CompressionConfig()
        # the kernels' threads: the CPU budget (PQCOMPRESS_THREADS, affinity, cgroup quota),
        # set for the calling thread only at each application; torch's own count is untouched
        self.threads = cpu_budget().threads
        self.targets: list[Target] = select_targets(self.model, self.config)
        if self.targets and announce:
            _log_coverage(self.coverage())
            _warn_collapse(self.targets)
        if not self.targets:
            raise ConfigError(
                "no tensor of the model matches the compression settings "
                f"(layer_types={list(self.config.layer_types)}, include={list(self.config.include)}, "
                f"exclude={list(self.config.exclude)}); nothing would be compressed"
            )
        self.latent = self.config.update == "latent"
        self.granular = self.config.granularity == "channel"
        self.residuals: dict[str, torch.Tensor] = {}
        if self.latent:
            self.residuals = {
                t.name: torch.zeros_like(t.param.data)
                for t in self.targets
                if t.spec.kind != "none" or self.granular
            }
        self.applied: dict[str, Applied | DeviceApplied] = {}
        # device path: each application's "weights were finite" flags, read back together
        self._finite: list[tuple[str, torch.Tensor]] = []
        self.alphas: dict[str, float] = {}  # alpha of the latest application, per tensor
        self.sticky = self.config.mask == "sticky"
        # sticky masks: True where the threshold pruned a weight for good
        self.dead: dict[str, torch.Tensor] = {}
        if self.sticky and not self.granular:
            self.dead = {
                t.name: torch.zeros_like(t.param.data, dtype=torch.bool)
                for t in self.targets
                if t.spec.kind not in ("none", "quantize")
            }
        # granularity="channel": the channel groups, traced at the first application
        self.plan: chan.ChannelPlan | None = None
        self._keep: dict[int, torch.Tensor] = {}
        self._masks: dict[str, torch.Tensor] | None = None
        self._parked: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pending_dead: dict[int, torch.Tensor] = {}
        self._example: Any = None
        self._capture_hook: Any = None
        if self.granular:
            chan._tp()  # the missing extra is said now, not at the first step
            if example_inputs is not None:
                self._example = chan.as_example(example_inputs)
            else:
                self._capture_hook = self.model.register_forward_pre_hook(
                    self._capture, with_kwargs=True
                )
        self._shared: float | None = None  # the last solve: alpha (std), else a threshold
        self._layer_alphas: dict[str, float] = {}  # allocation magnitude/lamp: per solved tensor
        self._solved_at: int | None = None
        self._warned_infeasible = False
        self._check_feasible()
        self._fused_step = False  # a fused optimizer (PQSGD, PQAdam) compressed this step already
        self.steps = 0
        self.epochs = 0
        self.applications = 0
        self.time_s = 0.0
        self._generator: torch.Generator | None = None
        # the user's own optimizer, fused through torch's step hooks (held weakly, removed
        # with this compressor or by unhook())
        every_step = self.config.schedule == "step"
        self._unhook = attach_step_hooks(self) if fuse_steps and every_step else None

    def coverage(self) -> list[Coverage]:
        """Every floating-point parameter of the model, compressed or left out and why (records
        with ``name``, ``shape``, ``numel``, ``compressed``, ``reason``); the share of elements
        compressed is ``sum(r.numel for r in cov if r.compressed) / sum(r.numel for r in cov)``."""
        return coverage(self.model, self.config)

    # ------------------------------------------------------------------ schedule
    def step(self) -> None:
        """Call after every optimizer step; compresses when ``schedule == "step"`` (unless a
        fused optimizer, ``pqcompress.aware.PQSGD`` or ``PQAdam``, already did in its own
        step)."""
        if self._fused_step:
            self._fused_step = False
            return
        self.steps += 1
        if self.config.schedule == "step":
            self._apply()

    # ------------------------------------------------------------------ fused optimizers
    def can_fuse(self) -> bool:
        """Whether an optimizer step can be fused with this compressor's application
        (``pqcompress.aware.PQSGD``, ``PQAdam``, ``PQAdamW``): every-step schedule, free mask,
        element granularity, numba backend allowed, and every compressed tensor (and its
        latent residual) a dense float32 CPU tensor (``ops.fused.numba_eligible``)."""
        cfg = self.config
        if cfg.schedule != "step" or self.sticky or cfg.backend == "torch" or self.granular:
            return False
        return all(
            numba_eligible(
                t.param.data, *([self.residuals[t.name]] if t.name in self.residuals else [])
            )
            for t in self.targets
            if t.spec.kind != "none"
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and copying: the step hooks are this process's and this object's, so a
        copy (or an unpickled compressor) attaches its own."""
        state = self.__dict__.copy()
        state["_unhook"] = self._unhook is not None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        hooked = bool(state.pop("_unhook"))
        self.__dict__.update(state)
        self._unhook = attach_step_hooks(self) if hooked else None

    def unhook(self) -> None:
        """Stop fusing the user's optimizer steps (``fuse_steps``): remove the step hooks."""
        if self._unhook is not None:
            self._unhook()
            self._unhook = None

    @property
    def fuses_steps(self) -> bool:
        """Whether this compressor's step hooks fuse a torch SGD/Adam/AdamW step with it."""
        return self._unhook is not None

    def fused_targets(self) -> list[Target]:
        """The targets a fused optimizer updates itself (those that are compressed)."""
        return [t for t in self.targets if t.spec.kind != "none"]

    def step_fused(self, updates: dict[str, FusedUpdate]) -> None:
        """One optimizer step and application at once: ``updates`` maps a target name to its
        optimizer update (``ops.fused.SGDUpdate`` or ``AdamUpdate``); targets without an
        entry are compressed as they are. The next :meth:`step` call only closes the step."""
        if not self.can_fuse():
            raise ConfigError("this compressor cannot fuse optimizer steps (see can_fuse)")
        self.steps += 1
        self._apply(updates)
        self._fused_step = True

    def epoch_end(self) -> None:
        """Call at the end of each epoch; compresses when ``schedule == "epoch"``."""
        self.epochs += 1
        if self.config.schedule == "epoch":
            self._apply()

    def apply(self) -> None:
        """Compress now, whatever the schedule (post-training compression)."""
        self._apply()

    def ramp(self) -> float:
        """Share of the final pruning in force now (1.0 without a ramp; cubic in the steps)."""
        return cubic_ramp(self.steps, self.config.ramp_steps)

    def density_target(self) -> float | None:
        """The density the shared alpha is solved for now (None without target_density):
        the sparsity ramps from 0 to ``1 - target_density`` with the cubic schedule. With
        channels, the share of channels (``target_density``) or of MACs (``target_flops``)."""
        target = self.config.target_density
        if target is None:
            target = self.config.target_flops
        if target is None:
            return None
        return 1.0 - (1.0 - target) * self.ramp()

    def _weights(self, target: Target) -> torch.Tensor:
        """The float weights of a tensor (latent: param + residual, with the float weights
        of pruned channels, which are parked aside while pruned)."""
        p = target.param.detach()
        r = self.residuals.get(target.name)
        if r is None:
            return p
        w = p + r
        parked = self._parked.get(target.name)
        if parked is not None:
            _flat(w).index_copy_(0, *parked)
        return w

    def _solve_alpha(self) -> float:
        """The shared alpha for the ``solved`` targets (cached for ``SOLVE_EVERY`` steps)."""
        if not self._resolve_due(self._shared):
            return self._shared  # type: ignore[return-value]
        density = self.density_target()
        assert density is not None
        solved = [self._weights(t) for t in self.targets if t.solved]
        fixed_nonzero, fixed_numel = self._fixed_kept(self.ramp())
        if (
            not self._warned_infeasible
            and solved_keep(density, sum(w.numel() for w in solved), fixed_nonzero, fixed_numel)
            <= 0
        ):
            self._warned_infeasible = True
            _log.warning(self._infeasible(density, fixed_nonzero, fixed_numel))
        with torch.no_grad():
            alpha, per_tensor = solve_density(
                solved,
                density,
                self.config.allocation,
                fixed_nonzero=fixed_nonzero,
                fixed_numel=fixed_numel,
            )
        self._shared, self._solved_at = alpha, self.applications
        # allocation "magnitude" or "lamp": the solve gave one threshold on a score; each
        # layer's alpha is the |w| its survivors start at over its own std
        self._layer_alphas = {}
        if self.config.allocation != "std":
            names = [t.name for t in self.targets if t.solved]
            self._layer_alphas = dict(zip(names, per_tensor, strict=True))
        return alpha

    @property
    def solved_alpha(self) -> float | None:
        """The alpha the last ``target_density`` solve gave the solved layers: the one alpha
        they share under ``allocation="std"`` or when one layer is solved; None before the
        first solve, and where each solved layer has an alpha of its own (``magnitude``,
        ``lamp``: see ``stats()``' ``applied_alpha``). Under channel granularity, the solved
        share of channels' score threshold."""
        if self._shared is None or not self._layer_alphas:
            return self._shared
        alphas = set(self._layer_alphas.values())
        return alphas.pop() if len(alphas) == 1 else None

    def _fixed_kept(self, ramp: float) -> tuple[int, int]:
        """What an application at ``ramp`` keeps of the tensors that are not solved (their
        own alpha, or quantize-only): (surviving elements, elements)."""
        nonzero, numel = 0, 0
        with torch.no_grad():
            for t in self.targets:
                if t.solved:
                    continue
                w = self._weights(t)
                numel += w.numel()
                if t.spec.kind in ("none", "quantize"):
                    nonzero += int(torch.count_nonzero(w))
                else:
                    beta = self._alpha_for(t, ramp, None) * layer_std(w)
                    nonzero += int((w.abs() >= beta).sum())
        return nonzero, numel

    def _check_feasible(self) -> None:
        """ConfigError when ``target_density`` is below what the tensors that are not solved
        keep by themselves at their final alpha (measured on the weights as they are now):
        the solved tensors would be pruned entirely, which trains to chance, not to the
        target."""
        density = self.config.target_density
        if density is None or self.granular or not any(t.solved for t in self.targets):
            return
        solved = [t.param for t in self.targets if t.solved]
        fixed_nonzero, fixed_numel = self._fixed_kept(1.0)
        if solved_keep(density, sum(p.numel() for p in solved), fixed_nonzero, fixed_numel) <= 0:
            raise ConfigError(self._infeasible(density, fixed_nonzero, fixed_numel))

    def _infeasible(self, density: float, fixed_nonzero: int, fixed_numel: int) -> str:
        """The message for a density below what the unsolved tensors keep by themselves."""
        names = [t.name for t in self.targets if t.solved]
        total = fixed_numel + sum(t.param.numel() for t in self.targets if t.solved)
        kept = fixed_nonzero / total
        return (
            f"target_density={density} is below what the layers that are not solved keep by "
            f"themselves ({kept:.4f} of all compressed weights at their own alpha), so the "
            f"solved layer(s) {', '.join(names[:4])}{' ...' if len(names) > 4 else ''} would be "
            f"pruned entirely; ask for a density above {kept:.4f}, lower solve_min_share "
            f"(now {self.config.solve_min_share}) so the smaller layers are solved too, or "
            "raise their alpha with an override"
        )

    def _resolve_due(self, cached: object) -> bool:
        """Whether the solved alpha (or the chosen channels) must be computed again: nothing
        cached yet, a schedule other than every step, or ``SOLVE_EVERY`` applications since."""
        return (
            cached is None
            or self._solved_at is None
            or self.config.schedule != "step"
            or self.applications - self._solved_at >= self.SOLVE_EVERY
        )

    def _alpha_for(self, target: Target, ramp: float, shared: float | None) -> float:
        if target.solved and shared is not None:
            return self._layer_alphas.get(target.name, shared)
        return target.alpha * ramp

    def _apply(
        self,
        updates: dict[str, FusedUpdate] | None = None,
    ) -> None:
        start = time.perf_counter()
        _kernel_threads(self.threads)
        cfg = self.config
        gen = self._torch_generator() if cfg.rounding == "stochastic" else None
        ramp = self.ramp()
        shared = self._solve_alpha() if any(t.solved for t in self.targets) else None
        masks = self._channel_masks(ramp) if self.granular else {}
        for index, target in enumerate(self.targets):
            where = masks.get(target.name)
            if where is not None:  # pruned channels: zero (the optimizer's residue there)
                _flat(target.param.data).index_fill_(0, where, 0)
            if target.spec.kind == "none":
                continue
            residual = self.residuals.get(target.name)
            dead = self.dead.get(target.name)
            if dead is not None:  # sticky: pruned weights and their updates are dropped
                target.param.data.masked_fill_(dead, 0.0)
                if residual is not None:
                    residual.masked_fill_(dead, 0.0)
            alpha = self._alpha_for(target, ramp, shared)
            if self.granular:  # alpha pruned channels; the elements are only quantized
                alpha = target.spec.alpha
            spec = target.spec if alpha == target.spec.alpha else replace(target.spec, alpha=alpha)
            update = updates.get(target.name) if updates else None
            seed = _mix(cfg.seed, self.applications, index)
            try:
                if update is not None:
                    applied = update(target.param.data, residual, spec, seed)
                else:
                    applied = compress_(
                        target.param.data,
                        residual,
                        spec,
                        seed=seed,
                        backend=cfg.backend,
                        generator=gen,
                    )
            except NonFiniteError:
                raise DivergedError(
                    f"tensor '{target.name}' holds NaN or inf after step {self.steps}: training "
                    "diverged (try a lower learning rate); it was left uncompressed"
                ) from None
            self.applied[target.name] = applied
            self.alphas[target.name] = alpha
            if isinstance(applied, DeviceApplied):
                self._finite.append((target.name, applied.finite))
                if dead is not None:  # the device's threshold; a zero one prunes nothing
                    self._update_dead(target, residual, dead, applied.threshold)
            elif dead is not None and applied.threshold > 0:
                self._update_dead(target, residual, dead, applied.threshold)
        if masks:  # the groups' other parameters: biases, BatchNorm, consumers left out
            chosen = {t.name for t in self.targets}
            params = dict(self.model.named_parameters())
            for name, where in masks.items():
                if name not in chosen and name in params:
                    _flat(params[name].data).index_fill_(0, where, 0)
        self.applications += 1
        if self._finite and (
            self.applications % self.CHECK_EVERY == 0 or self.config.schedule != "step"
        ):
            self.check_finite()
        self.time_s += time.perf_counter() - start

    def check_finite(self) -> None:
        """Device path: read back whether the weights of the applications since the last
        check were finite (one synchronisation); DivergedError naming the first tensor that
        was not (its weights were left as they were)."""
        flags, self._finite = self._finite, []
        if not flags or bool(torch.stack([f for _, f in flags]).all()):
            return
        name = next(n for n, f in flags if not bool(f))
        raise DivergedError(
            f"tensor '{name}' held NaN or inf within the last {self.CHECK_EVERY} steps (before "
            f"step {self.steps}): training diverged (try a lower learning rate); it was left "
            "uncompressed"
        )

    def _host(self, name: str) -> Applied | None:
        """The latest application's parameters of ``name`` as floats (device: read back)."""
        applied = self.applied.get(name)
        if isinstance(applied, DeviceApplied):
            applied = applied.host()  # type: ignore[assignment]
        return applied  # type: ignore[return-value]

    # ------------------------------------------------------------------ channels
    def _capture(self, _module: nn.Module, args: Any, kwargs: Any) -> None:
        """Forward pre-hook: keep the first call's inputs to trace the channel groups."""
        self._example = (
            tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args),
            {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()},
        )
        if self._capture_hook is not None:
            self._capture_hook.remove()
            self._capture_hook = None

    def channel_plan(self) -> chan.ChannelPlan:
        """The model's channel groups (traced once, on the example inputs)."""
        if self.plan is None:
            if self._example is None:
                raise ConfigError(
                    "granularity='channel' traces the model to find its coupled channels and "
                    "has no input to trace it with: pass Compressor(model, config, "
                    "example_inputs=...) or run one forward pass before the first step"
                )
            self.plan = chan.ChannelPlan.build(self.model, self._example, self.config, self.targets)
            for i, dead in self._pending_dead.items():
                self.plan.dead[i] = dead.clone()
            self._pending_dead = {}
            for name, why in self.plan.unscored.items():
                _log.info("channels of '%s' are not pruned: %s", name, why)
        return self.plan

    def _channel_masks(self, ramp: float) -> dict[str, torch.Tensor]:
        """{parameter: flat indices of its elements in the channels this application prunes}.
        The channels are chosen again (scores, solved alpha, masks) every ``SOLVE_EVERY``
        step applications, and at every application of another schedule; between, the same
        channels are pruned."""
        plan = self.channel_plan()
        if not self._resolve_due(self._masks):  # chosen again every SOLVE_EVERY applications
            assert self._masks is not None
            return self._masks
        by_name = {t.name: t for t in self.targets}
        scores = plan.scores(lambda name: self._weights(by_name[name]))
        fixed = {i: g.alpha * ramp for i, g in enumerate(plan.groups) if i in scores}
        self._solved_at = self.applications
        if any(plan.groups[i].solved for i in scores):
            target = self.density_target()
            assert target is not None
            flops = self.config.target_flops is not None
            self._shared = plan.solve(scores, fixed, target, flops)
            fixed.update((i, self._shared) for i in scores if plan.groups[i].solved)
        keep = plan.keep(scores, fixed)
        if self.sticky:
            for i, k in keep.items():
                dead = plan.dead.setdefault(i, torch.zeros_like(k))
                dead |= ~k
        for i, g in enumerate(plan.groups):
            if i in fixed:
                for s in g.producers:
                    self.alphas[s.param] = fixed[i]
        same = keep.keys() == self._keep.keys() and all(
            torch.equal(k, self._keep[i]) for i, k in keep.items()
        )
        self._keep = keep
        if not same or self._masks is None:
            params = dict(self.model.named_parameters())
            self._masks = {
                name: torch.nonzero(
                    ~chan.keep_mask(params[name].shape, where, params[name].device).flatten()
                ).flatten()
                for name, where in plan.masks(keep).items()
            }
            self._park(self._masks)
        return self._masks

    def _park(self, masks: dict[str, torch.Tensor]) -> None:
        """Latent: move the float weights of the pruned channels' elements (``masks``: flat
        indices per tensor) out of ``param + residual`` into ``_parked`` and zero both there,
        after putting back those parked for the previous masks. While a channel stays pruned
        its activation is zero, so its weights get no gradient: parked, they are kept as they
        were, and the kernel sees zeros (it leaves them zero and excludes them from max|W|)."""
        for t in self.targets:
            r = self.residuals.get(t.name)
            if r is None:
                continue
            p = _flat(t.param.data)
            old = self._parked.pop(t.name, None)
            if old is not None:
                _flat(r).index_copy_(0, *old)
                p.index_fill_(0, old[0], 0)  # the parked value is the whole float weight
            idx = masks.get(t.name)
            if idx is None:
                continue
            values = p.index_select(0, idx).add_(_flat(r).index_select(0, idx))
            p.index_fill_(0, idx, 0)
            _flat(r).index_fill_(0, idx, 0)
            self._parked[t.name] = (idx, values)

    def channel_records(self) -> list[dict[str, Any]]:
        """One record per channel group (root layer, channels, kept, coupled layers, alpha,
        whether it takes the solved alpha, why it stays dense), from the latest application;
        ``[]`` with element granularity."""
        if not self.granular or (self.plan is None and self._example is None):
            return []
        return self.channel_plan().records(self._keep)

    def channel_summary(self) -> dict[str, Any] | None:
        """MACs per sample before and after shrinking (what ``save(shrink=True)`` will
        remove), the shares of MACs and channels kept; None with element granularity."""
        if not self.granular or (self.plan is None and self._example is None):
            return None
        return self.channel_plan().summary(self._keep)

    @staticmethod
    def _update_dead(
        target: Target,
        residual: torch.Tensor | None,
        dead: torch.Tensor,
        threshold: float | torch.Tensor,
    ) -> None:
        """Mark the weights this application's threshold pruned (latent: ``|w| < beta`` of the
        float weights; in place, where the float value is gone: weights that are now zero)."""
        p = target.param.data
        if residual is None:
            dead |= p == 0
            return
        w = p + residual
        beta = torch.as_tensor(threshold, dtype=w.dtype, device=w.device)
        dead |= w.abs_() < beta

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
        self.check_finite()
        out = []
        for t in self.targets:
            p = t.param.detach()
            nonzero = int(torch.count_nonzero(p))
            applied = self._host(t.name)
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
                    applied_alpha=self.alphas.get(t.name),
                )
            )
        return out

    def compressed(self, name: str) -> PQResult:
        """Codes and parameters that reproduce tensor ``name`` exactly (for export)."""
        target = next((t for t in self.targets if t.name == name), None)
        if target is None:
            raise KeyError(f"'{name}' is not a compressed tensor; compressed: {self.names()}")
        applied = self._host(name)
        own = target.param.detach()
        values = own.float().clone()
        kind = target.spec.kind
        if kind == "none":
            return PQResult(values, None, kind, 32, 0.0, 0.0)
        if applied is None:
            raise ValueError(f"'{name}' has not been compressed yet; call apply() first")
        codes = None
        if kind not in ("prune", "none"):
            codes = codes_from_values(own, kind, target.bits, applied.scale, applied.threshold)
        return PQResult(values, codes, kind, target.bits, applied.scale, applied.threshold)

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def latent_weights(self) -> dict[str, torch.Tensor]:
        """Float weights (param + residual in latent mode; the params themselves otherwise)."""
        return {
            t.name: self._weights(t) if self.latent else t.param.detach().clone()
            for t in self.targets
        }

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Counters, latest parameters, latent residuals and RNG state (tensors and plain data)."""
        self.check_finite()  # a checkpoint never holds weights that silently diverged
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "steps": self.steps,
            "epochs": self.epochs,
            "applications": self.applications,
            "time_s": self.time_s,
            "applied": {k: asdict(self._host(k)) for k in self.applied},  # type: ignore[arg-type]
            "residuals": {k: self._residual_with_parked(k) for k in self.residuals},
            "alphas": dict(self.alphas),
            "dead": {k: v.clone() for k, v in self.dead.items()},
            "solved_alpha": self._shared,  # (the key predates allocation magnitude/lamp)
            "layer_alphas": dict(self._layer_alphas),
            "solved_at": self._solved_at,
        }
        if self.granular:
            dead = self.plan.dead if self.plan is not None else self._pending_dead
            state["channel_dead"] = {str(i): v.clone() for i, v in dead.items()}
        if self._generator is not None:
            state["generator"] = self._generator.get_state()
        return state

    def _residual_with_parked(self, name: str) -> torch.Tensor:
        """A copy of the residual with the parked float weights in it (``param`` is zero
        there), so a checkpoint holds every float weight as ``param + residual``."""
        r = self.residuals[name].clone()
        parked = self._parked.get(name)
        if parked is not None:
            _flat(r).index_copy_(0, *parked)
        return r

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
            self._parked, self._masks = {}, None  # parked again at the next application
        self.alphas = {str(k): float(v) for k, v in state.get("alphas", {}).items()}
        if self.sticky:
            masks = state.get("dead", {})
            missing = set(self.dead) - set(masks)
            if missing:
                raise ValueError(f"compressor state lacks sticky masks for {sorted(missing)}")
            for k, v in masks.items():
                if k in self.dead:
                    self.dead[k].copy_(v)
        solved = state.get("solved_alpha")
        self._shared = None if solved is None else float(solved)
        self._layer_alphas = {str(k): float(v) for k, v in state.get("layer_alphas", {}).items()}
        at = state.get("solved_at")
        self._solved_at = None if at is None else int(at)
        if "generator" in state:
            self._torch_generator().set_state(state["generator"])
        if self.granular:
            dead = {int(k): v.clone() for k, v in state.get("channel_dead", {}).items()}
            if self.plan is not None:
                self.plan.dead = dead
            else:
                self._pending_dead = dead


def _refuse_sharded(model: nn.Module) -> None:
    """ConfigError for a model sharded with FSDP (FSDP1 or ``fully_shard``): each process holds
    a slice of every weight, and P->Q needs the whole weight's std and max|W|."""
    kinds = {c.__name__ for m in model.modules() for c in type(m).__mro__}
    sharded = kinds & {"FSDPModule", "FullyShardedDataParallel"} or any(
        type(p).__name__ == "DTensor" for p in model.parameters()
    )
    if sharded:
        raise ConfigError(
            "the model is sharded with FSDP (each process holds a slice of every weight), and "
            "P->Q needs each whole weight's std and max|W|: train with DistributedDataParallel "
            "(pqcompress train --nproc N, or torchrun with DDP), where every process holds "
            "whole weights"
        )


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A flat view of ``t`` (its elements in storage order must be its logical order)."""
    if not t.is_contiguous():
        raise ConfigError(
            "granularity='channel' needs contiguous parameters (a channels_last model: "
            "convert it with model.to(memory_format=torch.contiguous_format))"
        )
    return t.view(-1)


def _mix(seed: int, application: int, index: int) -> int:
    """A 64-bit seed per (config seed, application, tensor) for the stochastic kernels."""
    x = seed * 0x9E3779B97F4A7C15 + application * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB
    return x & 0xFFFFFFFFFFFFFFFF


def _warn_collapse(targets: list[Target]) -> None:
    """One warning naming the tensors whose grid rounds most weights to zero
    (``ops.pq.grid_collapse``; a solved alpha is not known yet and is not judged)."""
    hit = {
        t.name: why
        for t in targets
        if not t.solved and (why := grid_collapse(t.spec.kind, t.spec.bits, t.spec.alpha))
    }
    if hit:
        names = ", ".join(list(hit)[:4]) + (f" and {len(hit) - 4} more" if len(hit) > 4 else "")
        _log.warning("%s: %s", names, next(iter(hit.values())))


def _log_coverage(records: list[Coverage]) -> None:
    """One line at construction: what share of the parameters is compressed, and what is left
    out by reason (so nothing a user brings is skipped silently)."""
    total = sum(r.numel for r in records) or 1
    done = sum(r.numel for r in records if r.compressed)
    left: dict[str, int] = {}
    for r in records:
        if not r.compressed:
            left[str(r.reason)] = left.get(str(r.reason), 0) + r.numel
    parts = "; ".join(
        f"{100 * n / total:.1f}%: {why}" for why, n in sorted(left.items(), key=lambda kv: -kv[1])
    )
    _log.info(
        "compressing %d of %d parameter tensors, %.1f%% of the elements%s",
        sum(r.compressed for r in records),
        len(records),
        100 * done / total,
        f"; left out: {parts}" if parts else "",
    )


def _kernel_threads(n: int) -> None:
    """numba's threads for the parallel kernels launched from this thread (numba's setting is
    per thread), at most NUMBA_NUM_THREADS; nothing when numba is not loaded (the torch path
    runs on torch's own pool)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(max(1, min(n, int(numba.config.NUMBA_NUM_THREADS))))
