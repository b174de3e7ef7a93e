"""The search study's design variables (docs/method.md §7) as one frozen config, and applying it.

=====  =======================  ============================================================
var    field                    values
=====  =======================  ============================================================
x1     ``linear_layers``        which Linear layers are pruned: none / random (subset) / all
x2     ``conv_layers``          the same for Conv layers
x3     ``linear_amount``        pruning amount in (0, 1) for Linear layers
x4     ``conv_amount``          pruning amount in (0, 1) for Conv layers
x5     ``linear_params``        what is pruned in Linear layers: biases / weights / both
x6     ``conv_params``          the same for Conv layers
x7     ``dynamic_int8``         dynamic int8 quantization of Linear layers (off / on)
=====  =======================  ============================================================

``method`` picks the pruning criterion (l1: smallest magnitudes, random, std: ``amount`` is
alpha and entries with |w| < alpha * std(W) go); a "random" layer subset takes each layer of
that kind with probability ``subset_fraction`` (at least one), seeded by ``seed``.
``quantize`` offers the other torch paths (static int8, float16) outside the study's x7.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from pqcompress.errors import ConfigError
from pqcompress.posttrain.prune import layer_kind, prune_l1, prune_random, prune_std

Which = Literal["none", "random", "all"]
What = Literal["biases", "weights", "both"]

WHICH = ("none", "random", "all")
WHAT = ("biases", "weights", "both")
METHODS = ("l1", "random", "std")
QUANTIZE = ("none", "static", "fp16")


@dataclass(frozen=True)
class PostTrainConfig:
    """Post-training compression settings; see the module docstring for x1..x7."""

    linear_layers: Which = "none"  # x1
    conv_layers: Which = "none"  # x2
    linear_amount: float = 0.0  # x3
    conv_amount: float = 0.0  # x4
    linear_params: What = "weights"  # x5
    conv_params: What = "weights"  # x6
    dynamic_int8: bool = False  # x7
    method: Literal["l1", "random", "std"] = "l1"
    scope: Literal["layer", "global"] = "layer"
    subset_fraction: float = 0.5
    quantize: Literal["none", "static", "fp16"] = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("linear_layers", "conv_layers"):
            if getattr(self, f) not in WHICH:
                raise ConfigError(f"{f}={getattr(self, f)!r} is not accepted; use {WHICH}")
        for f in ("linear_params", "conv_params"):
            if getattr(self, f) not in WHAT:
                raise ConfigError(f"{f}={getattr(self, f)!r} is not accepted; use {WHAT}")
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r} is not accepted; use {METHODS}")
        if self.scope not in ("layer", "global"):
            raise ConfigError(f"scope={self.scope!r} is not accepted; use layer or global")
        if self.quantize not in QUANTIZE:
            raise ConfigError(f"quantize={self.quantize!r} is not accepted; use {QUANTIZE}")
        if self.dynamic_int8 and self.quantize != "none":
            raise ConfigError("dynamic_int8 (x7) and quantize= are exclusive; pick one")
        for f in ("linear_amount", "conv_amount"):
            v = float(getattr(self, f))
            if v < 0 or (self.method != "std" and v > 1):
                raise ConfigError(f"{f}={v!r} must lie in [0, 1] (alpha >= 0 for method=std)")
        if not 0.0 < self.subset_fraction <= 1.0:
            raise ConfigError(f"subset_fraction={self.subset_fraction!r} must lie in (0, 1]")

    @classmethod
    def from_vector(cls, x: Sequence[Any], **kwargs: Any) -> PostTrainConfig:
        """From the study's vector (x1..x7): x1, x2, x5, x6 as indices (0, 1, 2) or names,
        x3, x4 floats, x7 truthy; ``kwargs`` set the other fields."""
        if len(x) != 7:
            raise ConfigError(f"expected 7 design variables x1..x7, got {len(x)}")

        def pick(v: Any, names: tuple[str, ...]) -> str:
            return v if isinstance(v, str) else names[int(v)]

        return cls(
            linear_layers=pick(x[0], WHICH),  # type: ignore[arg-type]
            conv_layers=pick(x[1], WHICH),  # type: ignore[arg-type]
            linear_amount=float(x[2]),
            conv_amount=float(x[3]),
            linear_params=pick(x[4], WHAT),  # type: ignore[arg-type]
            conv_params=pick(x[5], WHAT),  # type: ignore[arg-type]
            dynamic_int8=bool(x[6]),
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chosen_layers(model: nn.Module, cfg: PostTrainConfig) -> dict[str, list[str]]:
    """{"linear": [module names], "conv": [...]}: the layers x1/x2 select."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    out: dict[str, list[str]] = {}
    for kind, which in (("linear", cfg.linear_layers), ("conv", cfg.conv_layers)):
        names = [n for n, m in model.named_modules() if layer_kind(m) == kind]
        if which == "none" or not names:
            out[kind] = []
        elif which == "all":
            out[kind] = names
        else:
            draw = torch.rand(len(names), generator=gen) < cfg.subset_fraction
            if not bool(draw.any()):
                draw[int(torch.randint(len(names), (1,), generator=gen))] = True
            out[kind] = [n for n, d in zip(names, draw.tolist()) if d]
    return out


def apply_posttrain(
    model: nn.Module, cfg: PostTrainConfig, *, calibration: Iterable[Any] | None = None
) -> nn.Module:
    """A compressed copy of ``model``: pruned per x1..x6, then quantized per x7/``quantize``.

    ``calibration`` (input batches) is needed for ``quantize="static"``. A pruning-only result
    is a plain float module: save it with :func:`pqcompress.codec.save`.
    """
    out = copy.deepcopy(model).eval()
    layers = chosen_layers(out, cfg)
    for kind, amount, what in (
        ("linear", cfg.linear_amount, cfg.linear_params),
        ("conv", cfg.conv_amount, cfg.conv_params),
    ):
        if not layers[kind] or amount == 0:
            continue
        common = {"layers": kind, "params": what, "scope": cfg.scope}
        if cfg.method == "l1":
            prune_l1(out, amount, modules=layers[kind], **common)
        elif cfg.method == "random":
            prune_random(out, amount, seed=cfg.seed, modules=layers[kind], **common)
        else:
            prune_std(out, amount, modules=layers[kind], **common)
    if cfg.dynamic_int8:
        from pqcompress.posttrain.quantize import quantize_dynamic_int8

        return quantize_dynamic_int8(out)
    if cfg.quantize == "static":
        if calibration is None:
            raise ConfigError("quantize='static' needs calibration= (a few input batches)")
        from pqcompress.posttrain.quantize import quantize_static_int8

        return quantize_static_int8(out, calibration)
    if cfg.quantize == "fp16":
        from pqcompress.posttrain.quantize import to_float16

        return to_float16(out)
    return out
