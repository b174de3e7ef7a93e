"""Efficiency Score (PE) and the compression ratio it divides by (docs/method.md §2)."""

from __future__ import annotations

from pqcompress.errors import ConfigError

ORIGINAL_BITS = 32


def compression_ratio(density: float, bits: int, b_orig: int = ORIGINAL_BITS) -> float:
    """RC = density * bits / b_orig: the fraction of the float32 dense size that is left."""
    if not 0.0 <= density <= 1.0:
        raise ConfigError(f"density={density} must be a fraction in [0, 1] (6.93% is 0.0693)")
    if bits <= 0 or b_orig <= 0:
        raise ConfigError(f"bits={bits} and b_orig={b_orig} must be positive")
    return density * bits / b_orig


def efficiency_score(
    acc_c: float,
    acc_base: float,
    density: float,
    bits: int,
    rho: float = 1,
    b_orig: int = ORIGINAL_BITS,
) -> float:
    """PE = (acc_c / acc_base)^rho / (density * bits / b_orig); PE > 1 reads as "worth it".

    ``acc_c`` and ``acc_base`` must use the same unit (both fractions or both percent);
    ``density`` is a fraction in [0, 1]. Returns ``inf`` when density is 0 (nothing kept).
    Grid-study example (CNN5, alpha .625, 4 bits): ``efficiency_score(79.20, 87.21, 0.0693, 4)``
    = 104.84 and 95.21 / 86.46 for rho 2 / 3. The study's 104.9 / 95.3 / 86.5 come from its
    unrounded density: any density from 6.924% to 6.927% (printed as 6.93%) gives all three.
    """
    if acc_base <= 0:
        raise ConfigError(f"acc_base={acc_base} must be > 0")
    if acc_c < 0:
        raise ConfigError(f"acc_c={acc_c} must be >= 0")
    rc = compression_ratio(density, bits, b_orig)
    preserved = (acc_c / acc_base) ** rho
    return float("inf") if rc == 0 else preserved / rc
