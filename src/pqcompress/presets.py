"""Named settings for the common asks ("10% of the weights at 4 bits"), as dotted config keys.

A preset is a plain mapping of ``ExperimentConfig`` keys to values, applied on top of a recipe
and under explicit flags (``pqcompress train --preset NAME``; ``apply_preset`` in Python).
The figures behind each one are in docs/compression.md §6 and docs/results/grid-cpu/.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pqcompress.config import CompressionConfig, from_dict, set_dotted
from pqcompress.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """One named setting: what it asks for, in words and as dotted config keys."""

    name: str
    summary: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def _sparse(density: float, bits: int) -> dict[str, Any]:
    # Measured on cnn5 / CIFAR-10 (docs/results/grid-cpu/): the layers holding most of the
    # weights take the solved alpha, every other layer keeps alpha .5, a free mask and a cubic
    # ramp over 6 epochs. One alpha for every layer starves the small conv layers instead.
    return {
        "compression.bits": bits,
        "compression.alpha": 0.5,
        "compression.target_density": density,
        "compression.solve_min_share": 0.05,
        "compression.mask": "free",
        "compression.ramp_steps": 0,
        "train.ramp_epochs": 6,
    }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "sparse10-4bit",
            "10% of the weights at 4 bits: the layers holding >= 5% of the weights each are "
            "pruned to meet the total, the others keep alpha .5; cubic ramp over 6 epochs",
            _sparse(0.10, 4),
        ),
        Preset(
            "sparse10-3bit",
            "the same at 3 bits: a smaller file for a little accuracy",
            _sparse(0.10, 3),
        ),
        Preset(
            "studies",
            "the studies' setting (docs/method.md): in-place updates, floor rounding, alpha .625, "
            "4 bits, P->Q after every step; for reproduction, it collapses BatchNorm CNNs",
            {
                "compression.alpha": 0.625,
                "compression.bits": 4,
                "compression.update": "inplace",
                "compression.rounding": "floor",
                "compression.schedule": "step",
            },
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ConfigError naming the known ones otherwise."""
    preset = PRESETS.get(name)
    if preset is None:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown preset '{name}'; the presets are: {known}")
    return preset


def apply_preset(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Set the preset's keys in ``data`` (a config dict, changed in place and returned)."""
    for key, value in get_preset(name).settings.items():
        set_dotted(data, key, value)
    return data


def preset_compression(name: str, **changes: Any) -> CompressionConfig:
    """The preset's ``compression.*`` keys as a CompressionConfig, with ``changes`` on top
    (e.g. ``ramp_steps=2000``: a training key such as ``train.ramp_epochs`` has no
    CompressionConfig field, so set the ramp in steps here)."""
    settings = {
        key.split(".", 1)[1]: value
        for key, value in get_preset(name).settings.items()
        if key.startswith("compression.")
    }
    settings.update(changes)
    return from_dict(CompressionConfig, settings)
