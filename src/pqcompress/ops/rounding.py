"""Rounding modes as (e_pos, e_neg, d) terms: a magnitude u rounds to m = e * floor(e * u + d)."""

from __future__ import annotations

ROUNDINGS: tuple[str, ...] = ("floor", "ceil", "trunc", "nearest", "stochastic")


def rounding_terms(rounding: str) -> tuple[float, float, float]:
    """(e_pos, e_neg, d) for ``rounding``; e_pos applies to values >= 0, e_neg to values < 0.

    floor and ceil act on the signed value (floor moves every weight down, so it grows
    negative magnitudes; ceil moves every weight up); trunc floors the magnitude (rounds
    toward zero); nearest rounds half away from zero, floor(u + 0.5); stochastic is
    floor(u + d) with d ~ U[0, 1) drawn per element (unbiased). The torch reference and
    the fused kernels use exactly these terms, so they agree bit for bit.
    """
    if rounding == "floor":
        return 1.0, -1.0, 0.0
    if rounding == "ceil":
        return -1.0, 1.0, 0.0
    if rounding == "trunc":
        return 1.0, 1.0, 0.0
    if rounding in ("nearest", "stochastic"):
        return 1.0, 1.0, 0.5
    raise ValueError(f"unknown rounding {rounding!r}; expected one of {', '.join(ROUNDINGS)}")
