"""Audio that contradicts its declared format: float32 sent as pcm_s16le, and a live
source at another rate (protocol.md ``SUSPECT_AUDIO``). Pure, on made-up clocks."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.stream.suspect import AudioCheck, float_share, nearest_standard_rate
from tests.support.audio import tone
from tests.support.speech import sentence

SPEECH = "Plants need sunlight and water to grow tall and strong."


def _live(check: AudioCheck, rate: int, seconds: float, frame: float = 0.1) -> list[str]:
    """``seconds`` of a live source at ``rate``: a frame of ``frame`` seconds every
    ``frame`` seconds, with a little network jitter."""
    jitter = np.random.default_rng(7).uniform(-0.02, 0.02, int(seconds / frame) + 1)
    size = int(rate * frame) * 2
    said = []
    for i in range(int(seconds / frame)):
        message = check.feed(b"\x01\x00" * (size // 2), 100.0 + i * frame + jitter[i])
        if message:
            said.append(message)
    return said


@pytest.mark.parametrize("voice", ["en-us", "en+f3", "en+klatt"])
def test_speech_as_16_bit_integers_is_not_taken_for_floats(voice: str) -> None:
    pcm = sentence(SPEECH, voice=voice)
    share, counted = float_share(pcm)
    assert counted > 10_000 and share < 0.5
    check = AudioCheck(16000)
    assert [m for i in range(0, len(pcm), 3200) if (m := check.feed(pcm[i : i + 3200], 0.0))] == []


def test_float_samples_sent_as_pcm_s16le_are_named_once() -> None:
    samples = np.frombuffer(sentence(SPEECH), dtype="<i2").astype("<f4") / 32768
    data = samples.tobytes()
    check = AudioCheck(16000)
    said = [m for i in range(0, len(data), 3200) if (m := check.feed(data[i : i + 3200], 0.0))]
    assert len(said) == 1 and "32-bit float" in said[0] and "pcm_s16le" in said[0]


def test_silence_and_tones_give_no_verdict() -> None:
    check = AudioCheck(16000)
    assert check.feed(bytes(64_000), 0.0) is None  # zeros: nothing to judge
    assert check.feed(tone(440, 2.0), 0.0) is None


@pytest.mark.parametrize(("real", "declared"), [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_a_live_source_at_another_rate_is_named(real: int, declared: int) -> None:
    said = _live(AudioCheck(declared), real, 10.0)
    assert len(said) == 1
    assert f"about {real} samples a second" in said[0] and f"sample_rate={declared}" in said[0]


def test_a_live_source_at_the_declared_rate_is_not_warned() -> None:
    assert _live(AudioCheck(16000), 16000, 20.0) == []
    assert _live(AudioCheck(48000), 48000, 20.0, frame=0.02) == []


def test_a_file_sent_in_bursts_is_not_taken_for_a_live_source() -> None:
    check = AudioCheck(16000)
    said = []
    for i in range(200):  # 3-second bursts every 2 s: 1.5 × real time, never steady
        now = 100.0 + (i // 10) * 2.0 + (i % 10) * 0.001
        said.append(check.feed(b"\x01\x00" * 4800, now))
    assert [m for m in said if m] == []
    fast = AudioCheck(16000)  # as fast as the network allows: no standard rate
    assert _live(fast, 16000 * 37, 10.0) == []


def test_the_pace_is_watched_for_a_minute_then_no_more() -> None:
    check = AudioCheck(16000)
    assert _live(check, 16000, 61.0) == []
    assert check.done  # both checks are over: nothing more is computed per frame
    assert check.feed(b"\x01\x00" * 100, 1_000.0) is None


def test_standard_rates_are_matched_within_tolerance() -> None:
    assert nearest_standard_rate(47_000) == 48000
    assert nearest_standard_rate(44_500) == 44100
    assert nearest_standard_rate(40_000) is None
