"""Which tensors of a model are compressed, and with which alpha/bits/form (the policy)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch
from torch import nn

from pqcompress.config import CompressionConfig, LayerOverride
from pqcompress.errors import ConfigError
from pqcompress.ops.fused import PQSpec
from pqcompress.ops.pq import resolve_kind


@dataclass(frozen=True)
class Target:
    """One compressed tensor: its parameter name, owning module and settings."""

    name: str
    module_name: str
    module_type: str
    param: nn.Parameter
    alpha: float
    bits: int
    spec: PQSpec
    solved: bool = False  # alpha is solved for ``target_density`` at each application


def _layer_classes(names: tuple[str, ...]) -> tuple[type, ...]:
    classes = []
    for name in names:
        cls = getattr(nn, name, None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ConfigError(
                f"layer_types entry '{name}' is not a torch.nn module class; "
                "use names like 'Linear', 'Conv1d', 'Conv2d', 'Conv3d'"
            )
        classes.append(cls)
    return tuple(classes)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pat) for pat in patterns)


def _override(name: str, overrides: tuple[LayerOverride, ...]) -> LayerOverride | None:
    for ov in overrides:  # first matching pattern wins
        if fnmatchcase(name, ov.pattern):
            return ov
    return None


def select_targets(model: nn.Module, cfg: CompressionConfig) -> list[Target]:
    """Tensors to compress, in model order. Patterns match module names (fnmatch),
    e.g. ``features.*`` or ``classifier.4``; overrides apply first-match-wins. With
    ``target_density`` set, every pruned tensor whose alpha is not fixed by an override and
    that holds at least ``solve_min_share`` of the selected weights is marked ``solved``: the
    compressor sets its alpha at each application; the others keep ``alpha``."""
    classes = _layer_classes(cfg.layer_types)
    kinds = {"weights": ("weight",), "biases": ("bias",), "both": ("weight", "bias")}[cfg.targets]
    seen: set[int] = set()
    chosen: list[tuple[str, nn.Module, str, torch.Tensor, LayerOverride | None]] = []
    for module_name, module in model.named_modules():
        if not isinstance(module, classes):
            continue
        if cfg.include and not _matches(module_name, cfg.include):
            continue
        if cfg.exclude and _matches(module_name, cfg.exclude):
            continue
        ov = _override(module_name, cfg.overrides)
        if ov is not None and ov.skip:
            continue
        for attr in kinds:
            param = getattr(module, attr, None)
            if not isinstance(param, torch.Tensor) or id(param) in seen:
                continue
            if not param.is_floating_point():
                continue
            seen.add(id(param))
            chosen.append((module_name, module, attr, param, ov))
    total = sum(param.numel() for *_, param, _ in chosen)
    targets: list[Target] = []
    for module_name, module, attr, param, ov in chosen:
        fixed_alpha = ov is not None and ov.alpha is not None
        alpha = ov.alpha if fixed_alpha else cfg.alpha  # type: ignore[union-attr]
        bits = ov.bits if ov is not None and ov.bits is not None else cfg.bits
        solved = takes_solved_alpha(cfg, fixed_alpha, param.numel(), total)
        kind = resolve_kind(cfg.mode, cfg.form, 1.0 if solved else alpha, bits)
        solved = solved and kind not in ("none", "quantize")
        name = f"{module_name}.{attr}" if module_name else attr
        spec = PQSpec(kind=kind, alpha=alpha, bits=bits, rounding=cfg.rounding)
        targets.append(
            Target(name, module_name, type(module).__name__, param, alpha, bits, spec, solved)
        )
    if cfg.target_density is not None and targets and not any(t.solved for t in targets):
        largest = max(t.param.numel() for t in targets) / total
        raise ConfigError(
            f"target_density={cfg.target_density} has no layer to solve: every selected layer "
            f"has an alpha of its own or holds less than solve_min_share={cfg.solve_min_share} "
            f"of the weights (the largest holds {largest:.3f}); lower solve_min_share or drop "
            "an override"
        )
    return targets


def takes_solved_alpha(cfg: CompressionConfig, fixed_alpha: bool, numel: int, total: int) -> bool:
    """Whether a tensor takes the alpha solved for ``target_density``: a density is asked
    for, no override fixes the tensor's alpha, and it holds at least ``solve_min_share`` of
    the ``total`` selected elements."""
    if cfg.target_density is None or fixed_alpha:
        return False
    return numel >= cfg.solve_min_share * total
