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

DEFAULT_LAYER_TYPES = CompressionConfig().layer_types


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
    fixed_alpha: bool = False  # an override sets this tensor's alpha


NORM_TYPES = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class Coverage:
    """One floating parameter of the model: whether it is compressed, and why not if not."""

    name: str
    shape: tuple[int, ...]
    numel: int
    compressed: bool
    reason: str | None  # None when compressed
    module_type: str

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "numel": self.numel,
            "compressed": self.compressed,
            "reason": self.reason,
            "module_type": self.module_type,
        }


def _layer_classes(names: tuple[str, ...]) -> tuple[type, ...]:
    classes = []
    for name in names:
        cls = getattr(nn, name, None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ConfigError(
                f"layer_types entry '{name}' is not a torch.nn module class; "
                "use names like 'Linear', 'Conv2d', 'Embedding', 'LSTM', 'MultiheadAttention'"
            )
        if issubclass(cls, NORM_TYPES):
            raise ConfigError(
                f"layer_types entry '{name}' is a normalization layer: its scale and shift are "
                "never compressed (docs/method.md §1); name the layers that hold weights"
            )
        classes.append(cls)
    return tuple(classes)


def param_kind(attr: str) -> str | None:
    """ "weight" or "bias" for a module's own parameter name (``weight``, ``weight_ih_l0``,
    ``in_proj_weight``, ``bias_hh_l1_reverse`` ...), None for anything else."""
    for kind in ("weight", "bias"):
        if attr == kind or attr.startswith(f"{kind}_") or attr.endswith(f"_{kind}"):
            return kind
    return None


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pat) for pat in patterns)


def _override(name: str, overrides: tuple[LayerOverride, ...]) -> LayerOverride | None:
    for ov in overrides:  # first matching pattern wins
        if fnmatchcase(name, ov.pattern):
            return ov
    return None


def _owned_parameters(model: nn.Module) -> list[tuple[str, str, nn.Module, str, torch.Tensor]]:
    """(full name, module name, module, attribute, tensor) of every parameter, once each (a
    tied parameter under its first name), in model order."""
    seen: set[int] = set()
    out = []
    for module_name, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{attr}" if module_name else attr
            out.append((full, module_name, module, attr, param))
    return out


def _decide(
    cfg: CompressionConfig,
    classes: tuple[type, ...],
    kinds: tuple[str, ...],
    full: str,
    module_name: str,
    module: nn.Module,
    attr: str,
    param: torch.Tensor,
) -> tuple[str | None, LayerOverride | None]:
    """Why ``param`` is left out (None: it is compressed), and its override."""
    if not param.is_floating_point():
        return "not a floating-point tensor", None
    by_name = bool(cfg.parameters) and _matches(full, cfg.parameters)
    if not by_name:
        if isinstance(module, NORM_TYPES):
            return "a normalization layer's scale or shift (never compressed)", None
        kind = param_kind(attr)
        if not isinstance(module, classes):
            if kind is None:  # a bare nn.Parameter (a class token, a position table ...)
                return (
                    f"'{attr}' of a {type(module).__name__} is no layer's weight: name it in "
                    "parameters=... to compress it",
                    None,
                )
            return f"module type {type(module).__name__} is not in layer_types", None
        if kind is None:
            return (
                f"'{attr}' is neither a weight nor a bias of its {type(module).__name__}; "
                "name it in parameters=... to compress it",
                None,
            )
        if f"{kind}" not in kinds:
            return f"a {kind}: targets='{cfg.targets}'", None
    if cfg.include and not _matches(module_name, cfg.include):
        return "its module is not matched by include", None
    if cfg.exclude and _matches(module_name, cfg.exclude):
        return "its module is matched by exclude", None
    ov = _override(module_name, cfg.overrides)
    if ov is not None and ov.skip:
        return f"skipped by the override '{ov.pattern}'", ov
    return None, ov


def coverage(model: nn.Module, cfg: CompressionConfig) -> list[Coverage]:
    """Every floating-point parameter of ``model`` (integer buffers aside), in model order:
    compressed or left out, and why. The one rule :func:`select_targets` also follows."""
    classes = _layer_classes(cfg.layer_types)
    kinds = _KINDS[cfg.targets]
    out = []
    for full, module_name, module, attr, param in _owned_parameters(model):
        reason, _ = _decide(cfg, classes, kinds, full, module_name, module, attr, param)
        out.append(
            Coverage(
                full,
                tuple(param.shape),
                param.numel(),
                reason is None,
                reason,
                type(module).__name__,
            )
        )
    return out


_KINDS = {"weights": ("weight",), "biases": ("bias",), "both": ("weight", "bias")}


def select_targets(model: nn.Module, cfg: CompressionConfig) -> list[Target]:
    """Tensors to compress, in model order: every weight (or bias, per ``targets``) a module
    of a ``layer_types`` class owns (``weight``; ``weight_ih_l0``/``weight_hh_l0`` of
    LSTM/GRU/RNN; ``in_proj_weight`` of MultiheadAttention ...), plus any parameter whose full
    name matches a ``parameters`` pattern. Patterns match module names (fnmatch), e.g.
    ``features.*`` or ``classifier.4``; overrides apply first-match-wins. With
    ``target_density`` set, every pruned tensor whose alpha is not fixed by an override and
    that holds at least ``solve_min_share`` of the selected weights is marked ``solved``: the
    compressor sets its alpha at each application; the others keep ``alpha``. ConfigError
    when a ``layer_types`` entry matches modules of which nothing can be compressed."""
    classes = _layer_classes(cfg.layer_types)
    kinds = _KINDS[cfg.targets]
    chosen: list[tuple[str, str, nn.Module, torch.Tensor, LayerOverride | None]] = []
    matched: dict[type, int] = {}
    for full, module_name, module, attr, param in _owned_parameters(model):
        for cls in classes:
            if isinstance(module, cls):
                matched.setdefault(cls, 0)
        reason, ov = _decide(cfg, classes, kinds, full, module_name, module, attr, param)
        if reason is None:
            chosen.append((full, module_name, module, param, ov))
            for cls in classes:
                if isinstance(module, cls):
                    matched[cls] = matched.get(cls, 0) + 1
    # an entry the user added (not a default) that matches modules yet compresses nothing of
    # them is a mistake worth one line, not a silent no-op
    unused = [c.__name__ for c, n in matched.items() if n == 0]
    unused = [name for name in unused if name not in DEFAULT_LAYER_TYPES]
    if unused:
        raise ConfigError(
            f"layer_types entry {unused[0]!r} matches modules of the model but none of their "
            f"parameters is compressed with targets='{cfg.targets}' and these include/exclude/"
            "override patterns (Compressor.coverage() lists each parameter and why)"
        )
    total = sum(param.numel() for *_, param, _ in chosen)
    channel = cfg.granularity == "channel"
    targets: list[Target] = []
    for name, module_name, module, param, ov in chosen:
        fixed_alpha = ov is not None and ov.alpha is not None
        alpha = ov.alpha if fixed_alpha else cfg.alpha  # type: ignore[union-attr]
        bits = ov.bits if ov is not None and ov.bits is not None else cfg.bits
        if channel:  # alpha prunes channels (aware/channels.py); elements are only quantized
            solved = False
            kind = resolve_kind(cfg.mode, cfg.form, 0.0, bits)
            spec = PQSpec(kind=kind, alpha=0.0, bits=bits, rounding=cfg.rounding)
        else:
            solved = takes_solved_alpha(cfg, fixed_alpha, param.numel(), total)
            kind = resolve_kind(cfg.mode, cfg.form, 1.0 if solved else alpha, bits)
            solved = solved and kind not in ("none", "quantize")
            spec = PQSpec(kind=kind, alpha=alpha, bits=bits, rounding=cfg.rounding)
        targets.append(
            Target(
                name,
                module_name,
                type(module).__name__,
                param,
                alpha,
                bits,
                spec,
                solved,  # type: ignore[arg-type]
                fixed_alpha,
            )
        )
    if (
        not channel
        and cfg.target_density is not None
        and targets
        and not any(t.solved for t in targets)
    ):
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
