"""loadtest.profiles: the open-model shapes and their validation."""

from __future__ import annotations

import pytest

from pqcompress.loadtest import LoadTestError, RampProfile, RateProfile, profile_from_dict
from pqcompress.loadtest.profiles import planned_requests


def test_ramp_grows_holds_and_falls_back_to_zero():
    p = RampProfile(peak_users=10, ramp_up_s=10, hold_s=5, ramp_down_s=10, user_rps=2)
    assert p.duration_s == 25
    assert p.users_at(-1) == 0 and p.users_at(25) == 0
    assert p.users_at(0.5) == 1 and p.users_at(5) == 5 and p.users_at(9.99) == 10
    assert p.users_at(12) == 10
    assert p.users_at(20) == 5 and p.users_at(24.99) == 1
    assert p.peak_rps() == 20
    # arrivals = integral of users x rate: 20 rps held 5 s, and each side a staircase of
    # whole users 1..10 (one second each) at 2 rps
    assert planned_requests(p) == pytest.approx(20 * 5 + 2 * (2 * sum(range(1, 11))))


def test_rate_profile_spreads_its_rate_over_streams_of_at_most_10_rps():
    p = RateProfile(rps=35, duration_s=4)
    assert p.users == 4 and p.per_user_rps == pytest.approx(8.75)
    assert p.users_at(0) == 4 and p.users_at(4) == 0
    assert planned_requests(p) == pytest.approx(140)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"peak_users": 0, "ramp_up_s": 1, "hold_s": 1, "ramp_down_s": 1}, "peak_users"),
        ({"peak_users": 5, "ramp_up_s": -1, "hold_s": 1, "ramp_down_s": 1}, "ramp_up_s"),
        ({"peak_users": 5, "ramp_up_s": 0, "hold_s": 0, "ramp_down_s": 0}, "lasts 0 s"),
        ({"peak_users": 5, "ramp_up_s": 1, "hold_s": float("nan"), "ramp_down_s": 1}, "finite"),
        (
            {"peak_users": 5000, "ramp_up_s": 1, "hold_s": 1, "ramp_down_s": 1, "user_rps": 5},
            "over the limit",
        ),
        ({"peak_users": True, "ramp_up_s": 1, "hold_s": 1, "ramp_down_s": 1}, "integer"),
    ],
)
def test_bad_ramps_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(LoadTestError, match=message):
        RampProfile(**kwargs)


def test_profiles_round_trip_and_unknown_keys_are_named():
    p = RampProfile(peak_users=3, ramp_up_s=1, hold_s=2, ramp_down_s=1, user_rps=0.5)
    assert profile_from_dict(p.to_dict()) == p
    r = RateProfile(rps=5, duration_s=2)
    assert profile_from_dict(r.to_dict()) == r
    with pytest.raises(LoadTestError, match="peek_users"):
        profile_from_dict({"kind": "ramp", "peek_users": 3})
    with pytest.raises(LoadTestError, match="'burst' is not known"):
        profile_from_dict({"kind": "burst"})
    with pytest.raises(LoadTestError, match="rps"):
        RateProfile(rps=0, duration_s=1)
