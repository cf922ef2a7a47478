from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stt.adaptive import AdaptiveWindow, UpstreamStats
from gateway.stt.retry import backoff_delay


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_window_grows_under_429s_and_shrinks_back() -> None:
    clock = _Clock()
    stats = UpstreamStats(clock=clock)
    window = AdaptiveWindow(5.0, 15.0, clock=clock)
    for _ in range(10):
        stats.record(rate_limited=True)
    seen = []
    for _ in range(5):
        seen.append(window.evaluate(stats))
        clock.now += 10
        for _ in range(10):
            stats.record(rate_limited=True)
    assert seen == [7.5, 11.25, 15.0, 15.0, 15.0]
    clock.now += 61  # the 429s age out
    shrinking = []
    for _ in range(5):
        stats.record(rate_limited=False)
        shrinking.append(window.evaluate(stats))
        clock.now += 10
    assert shrinking == [10.0, 6.667, 5.0, 5.0, 5.0]


def test_window_holds_between_thresholds_and_needs_traffic() -> None:
    clock = _Clock()
    stats = UpstreamStats(clock=clock)
    window = AdaptiveWindow(5.0, 15.0, clock=clock)
    for _ in range(2):
        stats.record(rate_limited=True)
    assert window.evaluate(stats) == 5.0  # too few requests to judge
    for _ in range(8):
        stats.record(rate_limited=False)
    stats.record(rate_limited=True)  # 3/11 ≈ 27 %
    assert window.evaluate(stats) == 7.5
    clock.now += 5
    assert window.evaluate(stats) == 7.5  # held for 10 s


def test_ratio_over_five_minutes() -> None:
    clock = _Clock()
    stats = UpstreamStats(clock=clock)
    stats.record(True)
    clock.now += 200
    stats.record(False)
    assert stats.rate_limited_ratio(300) == 0.5
    clock.now += 150
    assert stats.rate_limited_ratio(300) == 0.0


def test_backoff_honours_retry_after_and_grows() -> None:
    rng = random.Random(1)
    assert backoff_delay(1, retry_after=2.5) == 2.5
    assert backoff_delay(1, retry_after=600) == 60.0
    delays = [backoff_delay(n, rng=rng) for n in range(1, 8)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(8.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 120),
            st.sampled_from(["record", "ask"]),
            st.booleans(),
            st.sampled_from([10.0, 60.0, 300.0, 900.0]),
        ),
        max_size=60,
    )
)
def test_counts_match_counting_every_answer_again(
    steps: list[tuple[float, str, bool, float]],
) -> None:
    """The running counts per horizon equal a recount of every answer kept (retention 300 s)."""
    clock = _Clock()
    stats = UpstreamStats(clock=clock)
    seen: list[tuple[float, bool]] = []
    for wait, action, is_429, horizon in steps:
        clock.now += wait
        if action == "record":
            stats.record(is_429)
            seen.append((clock.now, is_429))
            continue
        kept = [(t, x) for t, x in seen if t >= clock.now - min(horizon, 300.0)]
        assert stats.counts(horizon) == (len(kept), sum(x for _, x in kept))
