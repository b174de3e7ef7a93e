"""Open-model load profiles: how many users are active at time t and how fast each one sends.

A *user* is an independent arrival stream: it sends a request every ``1 / user_rps`` seconds
on average (Poisson arrivals) and never waits for an answer, so a slow service sees the same
arrivals as a fast one (the open model of JMeter's open-model thread group; a closed model's
users would wait and hide the slowness). The offered rate at time t is
``users_at(t) * user_rps``.

- :class:`RampProfile`: the studies' shape; users grow linearly from 0 to ``peak_users`` over
  ``ramp_up_s``, stay there for ``hold_s`` and fall back to 0 over ``ramp_down_s``.
- :class:`RateProfile`: a constant arrival rate ``rps`` for ``duration_s``, spread over
  ``ceil(rps / 10)`` users so that no single stream carries more than 10 requests/s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pqcompress.loadtest.errors import LoadTestError, read_config

MAX_DURATION_S = 24 * 3600.0
MAX_USERS = 10_000
MAX_RPS = 10_000.0
RATE_PER_USER = 10.0


def _positive(name: str, value: float, *, zero: bool = False, limit: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise LoadTestError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise LoadTestError(f"{name} must be {'>= 0' if zero else '> 0'}, got {value}")
    if limit is not None and value > limit:
        raise LoadTestError(f"{name} must be <= {limit:g}, got {value:g}")


@dataclass(frozen=True)
class RampProfile:
    """Ramp of open-model users: 0 -> ``peak_users`` -> 0 (the studies' profile)."""

    peak_users: int
    ramp_up_s: float
    hold_s: float
    ramp_down_s: float
    user_rps: float = 1.0
    kind: Literal["ramp"] = "ramp"

    def __post_init__(self) -> None:
        if not isinstance(self.peak_users, int) or isinstance(self.peak_users, bool):
            raise LoadTestError(f"peak_users must be an integer, got {self.peak_users!r}")
        if not 1 <= self.peak_users <= MAX_USERS:
            raise LoadTestError(f"peak_users must be in 1..{MAX_USERS}, got {self.peak_users}")
        for name in ("ramp_up_s", "hold_s", "ramp_down_s"):
            _positive(name, getattr(self, name), zero=True, limit=MAX_DURATION_S)
        _positive("user_rps", self.user_rps, limit=MAX_RPS)
        if self.duration_s <= 0:
            raise LoadTestError("the ramp profile lasts 0 s: give ramp_up_s, hold_s or ramp_down_s")
        if self.peak_users * self.user_rps > MAX_RPS:
            raise LoadTestError(
                f"peak_users x user_rps = {self.peak_users * self.user_rps:g} requests/s is over "
                f"the limit of {MAX_RPS:g}"
            )

    @property
    def duration_s(self) -> float:
        return float(self.ramp_up_s + self.hold_s + self.ramp_down_s)

    @property
    def per_user_rps(self) -> float:
        return float(self.user_rps)

    def users_at(self, t: float) -> int:
        """Active users ``t`` seconds after the start (0 outside the profile)."""
        up, hold, down = self.ramp_up_s, self.hold_s, self.ramp_down_s
        if t < 0 or t >= self.duration_s:
            return 0
        if t < up:
            return max(1, math.ceil(self.peak_users * t / up))
        if t < up + hold:
            return self.peak_users
        return max(0, math.ceil(self.peak_users * (1 - (t - up - hold) / down)))

    def peak_rps(self) -> float:
        return self.peak_users * self.user_rps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RateProfile:
    """A constant open arrival rate of ``rps`` requests/s for ``duration_s`` seconds."""

    rps: float
    duration_s: float
    kind: Literal["rate"] = "rate"

    def __post_init__(self) -> None:
        _positive("rps", self.rps, limit=MAX_RPS)
        _positive("duration_s", self.duration_s, limit=MAX_DURATION_S)

    @property
    def users(self) -> int:
        return max(1, math.ceil(self.rps / RATE_PER_USER))

    @property
    def per_user_rps(self) -> float:
        return float(self.rps) / self.users

    def users_at(self, t: float) -> int:
        return self.users if 0 <= t < self.duration_s else 0

    def peak_rps(self) -> float:
        return float(self.rps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Profile = RampProfile | RateProfile


def planned_requests(profile: Profile) -> float:
    """Expected arrivals of a profile (for sizing and checks): the integral of its rate."""
    steps = max(1, math.ceil(profile.duration_s * 10))
    dt = profile.duration_s / steps
    return sum(profile.users_at((i + 0.5) * dt) * profile.per_user_rps * dt for i in range(steps))


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """A profile from its plain form (``{"kind": "ramp", "peak_users": ...}``); LoadTestError
    naming an unknown kind or key."""
    if not isinstance(data, dict):
        raise LoadTestError(f"a profile must be a mapping, got {type(data).__name__}")
    kind = data.get("kind", "ramp")
    cls: type[RampProfile] | type[RateProfile]
    if kind == "ramp":
        cls = RampProfile
    elif kind == "rate":
        cls = RateProfile
    else:
        raise LoadTestError(f"profile kind {kind!r} is not known; expected 'ramp' or 'rate'")
    return read_config(cls, data, f"{kind} profile")
