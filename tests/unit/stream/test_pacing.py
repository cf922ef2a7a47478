"""New streams near saturation come in a few a second (injected clock, no waiting)."""

from __future__ import annotations

import pytest

from gateway.stream.pacing import Pace, PaceLimits
from gateway.stream.saturation import Saturation, SaturationLimits

LIMITS = PaceLimits(share_per_second=0.02, min_per_second=2.0)


def test_far_from_saturation_a_whole_school_comes_in_at_once() -> None:
    pace = Pace(LIMITS)
    assert all(pace.admit(0.0, n, near=False) for n in range(500))


def test_near_saturation_new_streams_come_in_at_the_pace() -> None:
    pace = Pace(LIMITS)
    assert pace.rate(400) == pytest.approx(8.0) and pace.rate(10) == 2.0
    assert pace.admit(0.0, 400, near=True)  # the first one near saturation
    assert not pace.admit(0.0, 401, near=True)  # ... and not a burst behind it
    admitted = sum(pace.admit(t / 100, 401, near=True) for t in range(1, 101))
    assert admitted == 8  # one second at 2 % of the streams open


def test_a_quiet_spell_saves_up_at_most_a_second_of_pace() -> None:
    pace = Pace(LIMITS)
    pace.admit(0.0, 400, near=True)
    burst = [pace.admit(60.0, 400, near=True) for _ in range(20)]
    assert sum(burst) == 8


def test_leaving_the_neighbourhood_of_saturation_ends_the_pacing() -> None:
    pace = Pace(LIMITS)
    pace.admit(0.0, 400, near=True)
    assert not pace.admit(0.0, 400, near=True)
    assert pace.admit(0.0, 400, near=False)
    assert pace.admit(0.0, 400, near=True)  # near again: starts with one, as at first


def _saturation() -> Saturation:
    return Saturation(SaturationLimits(enter_seconds=0.1, leave_seconds=0.03, warmup_seconds=0))


def test_near_is_a_lag_past_the_reopening_bound_or_streams_close_to_the_last_capacity() -> None:
    s = _saturation()
    s.observe(0.02, 0.0, 100)
    assert not s.near(100)
    s.observe(0.05, 0.05, 100)
    s.observe(0.05, 5.0, 100)  # a lasting 50 ms: between the bounds
    assert not s.saturated and s.near(100)
    s.observe(0.5, 10.0, 300)  # saturated with 300 open
    assert s.saturated and s.near(300) and s.capacity == 300
    for tick in range(1, 200):  # calm again, with 280 open: reopened, but near
        s.observe(0.001, 10.0 + tick * 0.05, 280)
    assert not s.saturated and s.near(280) and s.near(270) and not s.near(269)


def test_without_saturation_there_is_no_pacing() -> None:
    s = Saturation(SaturationLimits(enter_seconds=0, warmup_seconds=0))
    s.observe(5.0, 0.0, 100)
    assert not s.near(100)
