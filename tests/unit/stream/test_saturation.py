"""When the process is saturated: the loop's lag smoothed, entered at one bound, left at a
lower one after a hold (no flapping), with an injected clock and signal."""

from __future__ import annotations

import pytest

from gateway.stream.saturation import Saturation, SaturationLimits, jittered

LIMITS = SaturationLimits(
    enter_seconds=0.1, leave_seconds=0.03, hold_seconds=5.0, smoothing_seconds=1.0, warmup_seconds=0
)


def _feed(s: Saturation, lag: float, start: float, seconds: float, streams: int = 10) -> float:
    """``lag`` every 50 ms for ``seconds`` from ``start``; the time after."""
    now = start
    for _ in range(round(seconds / 0.05)):
        now += 0.05
        s.observe(lag, now, streams)
    return now


def test_one_slow_turn_does_not_close_admission_but_a_lasting_lag_does() -> None:
    s = Saturation(LIMITS)
    now = _feed(s, 0.002, 0.0, 2.0)
    s.observe(0.6, now + 0.05, 10)  # one garbage collection
    assert not s.saturated and s.lag < 0.1
    now = _feed(s, 0.002, now + 0.05, 2.0)
    assert s.lag < 0.01
    now = _feed(s, 0.15, now, 0.5)
    assert not s.saturated  # smoothing: half a second of 150 ms is not yet enough
    now = _feed(s, 0.15, now, 2.0, streams=640)
    assert s.saturated and s.capacity == pytest.approx(640)


def test_a_full_collection_pause_at_the_default_bounds_does_not_close_admission() -> None:
    s = Saturation(SaturationLimits(warmup_seconds=0))
    now = _feed(s, 0.0015, 0.0, 3.0, streams=150)
    now += 0.05 + 0.15  # the loop held 150 ms: the timer runs that late, that much later
    s.observe(0.15, now, 150)
    assert not s.saturated and s.lag < 0.008  # uncapped, this one sample made it 29 ms
    now = _feed(s, 0.0015, now, 3.0, streams=150)
    assert not s.saturated
    _feed(s, 0.03, now, 1.0, streams=150)  # late turn after turn: a queue, not one pause
    assert s.saturated and s.capacity == 150


def test_it_stays_closed_between_the_bounds_and_reopens_after_the_hold() -> None:
    s = Saturation(LIMITS)
    now = _feed(s, 0.3, 0.0, 2.0)
    assert s.saturated
    now = _feed(s, 0.06, now, 20.0)  # under the entry bound, over the exit bound
    assert s.saturated
    now = _feed(s, 0.005, now, 3.0)  # the lag falls: the hold starts once under 30 ms
    assert s.saturated
    now = _feed(s, 0.2, now, 1.0)  # back up before the hold ended: the hold starts again
    now = _feed(s, 0.005, now, 4.0)
    assert s.saturated
    changed = [s.observe(0.005, now + 0.05 * i, 10) for i in range(1, 200)]
    assert changed.count(True) == 1 and not s.saturated  # reopened once, by itself


def test_what_it_could_serve_is_kept_until_the_load_falls_well_below_it() -> None:
    s = Saturation(LIMITS)
    now = _feed(s, 0.3, 0.0, 2.0, streams=800)
    now = _feed(s, 0.001, now, 10.0, streams=700)
    assert not s.saturated and s.capacity == 800
    _feed(s, 0.001, now, 1.0, streams=399)
    assert s.capacity is None


def test_the_first_seconds_decide_nothing() -> None:
    s = Saturation(SaturationLimits(enter_seconds=0.1, warmup_seconds=5.0))
    now = _feed(s, 2.0, 0.0, 4.9)  # starting up: slow turns
    assert not s.saturated
    _feed(s, 0.002, now, 5.0)
    assert not s.saturated and s.lag < 0.1


def test_one_slow_turn_as_the_start_up_ends_does_not_close_admission() -> None:
    """The smoothed lag starts calm when the start-up ends, not at that moment's sample:
    streams arriving from the first second kept the loop busy through the warm-up, and
    one 20 ms turn right after it closed admission for good."""
    s = Saturation(SaturationLimits(enter_seconds=0.008, leave_seconds=0.003))
    now = _feed(s, 0.004, 0.0, 4.9)  # busy from the start: never a calm second
    s.observe(0.021, now + 0.3, 150)  # the first turn after the 5 s of start-up
    assert not s.saturated and s.lag < 0.008
    _feed(s, 0.02, now + 0.3, 3.0, streams=150)  # a lasting 20 ms does
    assert s.saturated


def test_a_calm_second_ends_the_start_up_early() -> None:
    """Streams that arrive as soon as the process listens are measured from its first
    calm second, not only once the whole warm-up has gone by."""
    limits = SaturationLimits(enter_seconds=0.1, leave_seconds=0.03, warmup_seconds=5.0)
    s = Saturation(limits)
    now = _feed(s, 0.5, 0.0, 0.5)  # a slow start
    now = _feed(s, 0.002, now, 0.6)  # calm, but not yet for a second
    now = _feed(s, 0.5, now, 0.3)  # slow again: the calm starts over
    assert not s.saturated and s.lag == 0.0
    now = _feed(s, 0.002, now, 1.1)  # a calm second: measured from here on
    assert now < 5.0 and not s.saturated
    _feed(s, 0.3, now, 2.0, streams=120)  # 3 s into the process, well before 5
    assert s.saturated and s.capacity == 120


def test_a_zero_bound_never_saturates() -> None:
    s = Saturation(SaturationLimits(enter_seconds=0, warmup_seconds=0))
    _feed(s, 5.0, 0.0, 10.0)
    assert not s.saturated


def test_refusals_come_back_spread_out() -> None:
    assert jittered(5.0, lambda: 0.0) == 5.0
    assert jittered(5.0, lambda: 0.999) == pytest.approx(10.0, abs=0.01)
    spread = {jittered(5.0, lambda v=v: v / 10) for v in range(10)}
    assert len(spread) == 10
