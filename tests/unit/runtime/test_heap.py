"""The start-up's heap is frozen: the collector's full passes no longer walk it."""

from __future__ import annotations

import gc

from gateway.runtime.heap import freeze_startup


def _full_pass_objects() -> int:
    """How many objects a full collection walks (the oldest generation's)."""
    return len(gc.get_objects(generation=2))


def test_what_start_up_left_is_frozen_and_what_comes_after_is_still_collected() -> None:
    kept = [{"n": n} for n in range(50_000)]  # a start-up's long-lived objects
    walked_before = _full_pass_objects()
    try:
        frozen = freeze_startup()
        assert frozen >= len(kept)
        assert _full_pass_objects() < walked_before - len(kept)
        cycle: list[object] = []
        cycle.append(cycle)  # garbage made after start-up: still the collector's
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()  # the rest of the test session as it was
    assert gc.get_freeze_count() == 0
    del kept
