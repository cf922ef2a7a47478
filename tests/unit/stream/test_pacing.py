"""New streams near saturation come in a few a second (injected clock, no waiting)."""

from __future__ import annotations

import pytest

from gateway.stream.pacing import REFUSING_SECONDS, Pace, PaceLimits
from gateway.stream.saturation import Saturation, SaturationLimits

LIMITS = PaceLimits(
    start_per_second=25.0,
    burst=50.0,
    share_per_second=0.02,
    min_per_second=2.0,
)


def _admitted(pace: Pace, at: float, streams: int, near: bool, asked: int) -> int:
    return sum(pace.admit(at, streams, near) for _ in range(asked))


def test_a_fresh_process_takes_a_burst_then_starts_slowly() -> None:
    pace = Pace(LIMITS)
    assert _admitted(pace, 0.0, 0, False, 80) == 50  # two classrooms at once
    assert pace.rate(0, near=False) == 25.0 == pace.rate(400, near=False)
    assert _admitted(pace, 1.0, 50, False, 80) == 25  # then 25 a second


def test_a_quiet_spell_saves_up_at_most_the_burst() -> None:
    pace = Pace(LIMITS)
    _admitted(pace, 0.0, 0, False, 50)
    assert _admitted(pace, 600.0, 100, False, 200) == 50


def test_near_saturation_new_streams_trickle_in() -> None:
    pace = Pace(LIMITS)
    assert pace.rate(400, near=True) == pytest.approx(8.0) and pace.rate(10, near=True) == 2.0
    _admitted(pace, 0.0, 0, False, 50)  # the slow start's burst, spent
    assert _admitted(pace, 0.0, 400, True, 10) == 0
    admitted = sum(pace.admit(t / 100, 401, near=True) for t in range(1, 101))
    assert admitted == 8  # one second at 2 % of the streams open


def test_coming_near_keeps_no_more_than_a_second_of_the_trickle() -> None:
    pace = Pace(LIMITS)
    pace.admit(0.0, 0, near=False)  # 49 left of the burst
    assert _admitted(pace, 0.0, 400, True, 60) == 8


def test_leaving_the_neighbourhood_of_saturation_brings_no_new_burst() -> None:
    """The lag dipping under the bound does not let a burst in: what was saved up near
    saturation (nothing) goes on at the slow start's rate."""
    pace = Pace(LIMITS)
    _admitted(pace, 0.0, 0, False, 50)
    assert _admitted(pace, 0.0, 300, True, 5) == 0
    assert _admitted(pace, 0.0, 300, False, 5) == 0  # far again, at once: nothing saved
    assert _admitted(pace, 0.2, 300, False, 20) == 5  # 0.2 s at 25 a second


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


def test_a_refusal_keeps_the_process_refusing_for_a_moment() -> None:
    pace = Pace(LIMITS)
    assert _admitted(pace, 0.0, 0, False, 50) == 50 and not pace.refusing(0.0)
    assert not pace.admit(0.01, 50, near=False)
    assert pace.refusing(0.01 + REFUSING_SECONDS / 2)
    assert not pace.refusing(0.01 + REFUSING_SECONDS)
