"""The client's audio ring and its reconnect rules (pure)."""

from __future__ import annotations

import pytest

from gateway.client.reconnect import FIRST_DELAY, MAX_DELAY, delay, may_reconnect
from gateway.client.ring import AudioRing


def test_the_ring_gives_back_audio_from_any_position_it_still_holds() -> None:
    ring = AudioRing(max_bytes=10)
    ring.append(b"abcdef")
    assert (ring.first, ring.end) == (0, 6)
    assert ring.since(2, 3) == b"cde"
    ring.append(b"ghijkl")  # 12 bytes: the oldest two fall out
    assert (ring.first, ring.end) == (2, 12)
    assert ring.since(4, 100) == b"efghijkl"
    assert ring.since(0, 4) == b"cdef"  # older than what is held: from the oldest


def test_the_ring_keeps_whole_samples() -> None:
    ring = AudioRing(max_bytes=5)
    ring.append(b"\x01\x02\x03\x04\x05\x06")
    assert ring.first % 2 == 0 and ring.since(0, 10) == b"\x03\x04\x05\x06"


@pytest.mark.parametrize("code", [None, 1001, 1006, 1011, 1013])
def test_a_drop_or_a_server_going_away_is_worth_another_try(code: int | None) -> None:
    assert may_reconnect(code)


@pytest.mark.parametrize("code", [1000, 4001, 4003, 4008, 4009, 4402, 4029])
def test_a_close_that_says_do_not_come_back_is_final(code: int) -> None:
    assert not may_reconnect(code)


def test_backoff_doubles_to_a_cap_with_jitter_and_retry_after_comes_first() -> None:
    assert delay(0, rand=lambda: 1.0) == FIRST_DELAY
    assert delay(0, rand=lambda: 0.0) == FIRST_DELAY / 2
    assert delay(3, rand=lambda: 1.0) == FIRST_DELAY * 8
    assert delay(30, rand=lambda: 1.0) == MAX_DELAY
    assert delay(0, retry_after=5.0, rand=lambda: 0.0) == 5.0
    assert delay(0, retry_after=5.0, rand=lambda: 1.0) == 7.5
