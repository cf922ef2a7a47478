"""A capacity step's view of the gateway's own load, from two or more scrapes."""

from __future__ import annotations

from loadtest.capacity_signals import summary


def _sample(
    t: float, cpu: float, count: float, total: float, buckets: dict[float, float], **kw: float
) -> dict[str, object]:
    return {"t": t, "cpu": cpu, "count": count, "sum": total, "lag_buckets": buckets, **kw}


def test_a_step_is_summed_up_from_its_first_and_last_scrapes() -> None:
    first = _sample(0.0, 10.0, 100, 0.1, {0.005: 100, 0.05: 100, 1.0: 100, float("inf"): 100})
    middle = _sample(
        5.0,
        12.0,
        200,
        0.5,
        {0.005: 150, 0.05: 199, 1.0: 200, float("inf"): 200},
        stt_saturated=1.0,
        stt_pending_audio_seconds=4.0,
    )
    last = _sample(
        10.0,
        17.0,
        300,
        1.1,
        {0.005: 200, 0.05: 297, 1.0: 300, float("inf"): 300},
        refused=12.0,
        stt_pending_audio_seconds=2.0,
    )
    got = summary([first, middle, last])
    assert got["loop_lag_mean_ms"] == 5.0  # 1.0 s of lag over 200 timers
    assert got["loop_lag_p99_under_ms"] == 1000.0  # 197 of 200 under 50 ms: p99 above it
    assert got["cpu_per_wall"] == 0.7
    assert got["pending_audio_max_s"] == 4.0 and got["pending_audio_mean_s"] == 2.0
    assert got["saturated_share"] == 0.33 and got["refused"] == 12


def test_too_few_scrapes_say_nothing() -> None:
    assert summary([]) == {}
