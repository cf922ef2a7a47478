"""The overload step judged against the steps before it and against exactly the capacity
offered (pure: rows in, verdict out)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.capacity_report import markdown, overload_summary


def _row(streams: int, p99: float, *, dropped: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "server": "gateway",
        "streams": streams,
        "held": more.pop("held", streams),
        "errors": 0,
        "frames": 0,
        "cpu_seconds_per_1000_frames": 0.3,
        "rss_per_stream_kib": 200.0,
        "windows_dropped": dropped,
        "admitted": more.pop("admitted", streams),
        "refused": more.pop("refused", 0),
        "refused_after_ms_max": more.pop("refused_after_ms_max", None),
        "signals": more.pop("signals", {}),
        "added_latency_ms": {"p50": p99 / 4, "p99": p99},
    }


STEPS = [_row(100, 40.0), _row(200, 180.0), _row(300, 320.0), _row(400, 900.0, dropped=3)]


def test_what_the_process_serves_is_its_largest_step_within_the_latency_bound() -> None:
    overload = _row(
        1200,
        250.0,
        held=190,
        admitted=190,
        refused=1010,
        refused_after_ms_max=400,
        signals={"saturated_share": 0.7},
    )
    summary = overload_summary(STEPS, overload, None)
    assert summary["capacity"] == 200  # 300 is past 40 + 250 ms, 400 dropped windows
    assert summary["latency_bound_ms"] == 290.0
    assert summary["goodput"] == 0.95 and summary["met"]


def test_goodput_is_against_what_it_served_offered_exactly_its_capacity() -> None:
    overload = _row(1200, 100.0, held=170, refused=1030, signals={"saturated_share": 0.5})
    at_capacity = _row(200, 90.0, held=180, refused=20)
    summary = overload_summary(STEPS, overload, at_capacity)
    assert summary["served_at_capacity"] == 180
    assert summary["goodput"] == 0.94 and summary["checks"]["goodput"]
    assert summary["share_of_capacity"] == 0.85  # shown, not judged
    at_capacity["held"] = 200
    assert not overload_summary(STEPS, overload, at_capacity)["checks"]["goodput"]


def test_each_missed_target_is_named() -> None:
    overload = _row(
        1200,
        2400.0,
        dropped=5,
        held=120,
        admitted=125,
        refused=1075,
        refused_after_ms_max=2500,
        signals={"saturated_share": 0.0},
    )
    summary = overload_summary(STEPS, overload, None)
    assert not summary["met"]
    assert {name for name, ok in summary["checks"].items() if not ok} == {
        "no_window_dropped",
        "latency_within_bound",
        "refused_in_time",
        "saturated_while_refusing",
        "goodput",
    }
    overload["overload"] = summary
    args = argparse.Namespace(step_seconds=15, window_seconds=5, upstream_latency_ms=300, loaders=2)
    text = markdown([*STEPS, overload], args)
    assert "the process serves 200" in text and "missed: no_window_dropped" in text
    assert "goodput 60 % (60 % of the capacity)" in text


def test_without_a_speaking_step_there_is_nothing_to_judge_against() -> None:
    assert overload_summary([], _row(1200, 100.0), None) == {}


def test_the_steps_with_admission_on_are_not_taken_for_the_step_of_the_same_size() -> None:
    from loadtest.capacity import ADMITTED

    step = _row(300, 120.0)
    live = {**_row(300, 160.0), "server": "gateway-interims", "interims": 9000}
    at_capacity = {**_row(300, 40.0, held=280), "server": ADMITTED}
    args = argparse.Namespace(
        step_seconds=15, window_seconds=5, upstream_latency_ms=300, loaders=2, interims="local"
    )
    text = markdown([step, live, at_capacity], args)
    assert "| 300 | 2.00 | 30 / 120 ms | 40 / 160 ms |" in text  # the step's, not 10 / 40
    assert f"| 300 | {ADMITTED} | 280 |" in text
