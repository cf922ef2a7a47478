from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stream.vad import NoiseFloor, VadParams, is_speech
from gateway.stream.windowing import Window, Windower
from tests.audio import silence, tone

RATE = 16000


def _check_tiling(windows: list[Window], total_samples: int) -> None:
    assert [w.seq for w in windows] == list(range(len(windows)))
    position = 0
    for w in windows:
        assert w.start_sample == position
        assert w.end_sample > w.start_sample
        assert len(w.pcm) == 2 * (w.end_sample - w.start_sample)
        position = w.end_sample
    assert position == total_samples


def test_fixed_windows_tile_a_tone() -> None:
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(tone(440, 3.5))
    assert [round(x.duration, 3) for x in out] == [1.0, 1.0, 1.0]
    out += w.close()
    _check_tiling(out, round(3.5 * RATE))
    assert out[-1].from_finalize and not out[0].from_finalize
    assert all(x.speech for x in out)


def test_silence_is_not_speech() -> None:
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(silence(2.0)) + w.close()
    assert len(out) == 2
    assert not any(x.speech for x in out)


def test_finalize_closes_short_window_but_not_below_minimum() -> None:
    w = Windower(RATE, window_seconds=5.0)
    assert w.feed(tone(300, 0.05)) == []
    assert w.finalize() == []  # 50 ms: carried into the next window
    w.feed(tone(300, 0.5))
    [win] = w.finalize()
    assert win.from_finalize and win.start_sample == 0
    assert win.end_sample == round(0.55 * RATE)


def test_tail_shorter_than_minimum_is_reported_at_close() -> None:
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(tone(300, 1.05)) + w.close()
    assert len(out) == 2
    assert out[1].duration < 0.1 and not out[1].speech


def test_window_ends_early_at_a_pause() -> None:
    w = Windower(RATE, window_seconds=2.0)
    pcm = tone(500, 1.7) + silence(0.1) + tone(500, 1.0)
    out = w.feed(pcm)
    assert len(out) == 1
    assert 1.7 <= out[0].end <= 1.8  # cut inside the pause, not at 2.0


def test_no_pause_cuts_at_target() -> None:
    w = Windower(RATE, window_seconds=2.0)
    [first] = w.feed(tone(500, 2.5))
    assert first.end_sample == 2 * RATE


def test_window_length_can_change_between_feeds() -> None:
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(tone(200, 1.0))
    w.window_seconds = 2.0
    out += w.feed(tone(200, 2.0))
    out += w.close()
    assert [round(x.duration, 2) for x in out] == [1.0, 2.0]


def test_vad_threshold() -> None:
    params = VadParams(threshold_dbfs=-50)
    assert is_speech(tone(440, 0.5, amplitude=0.01), RATE, params)  # about -43 dBFS
    assert not is_speech(tone(440, 0.5, amplitude=0.001), RATE, params)  # about -63 dBFS


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("audio"), st.integers(0, 9000)),
        st.tuples(st.just("finalize"), st.just(0)),
        st.tuples(st.just("resize"), st.floats(0.1, 1.5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, rate=st.sampled_from([8000, 16000, 44100]), pattern=st.integers(0, 3))
def test_windows_tile_the_stream_for_any_interleaving(
    ops: list[tuple[str, float]], rate: int, pattern: int
) -> None:
    w = Windower(rate, window_seconds=0.5)
    windows: list[Window] = []
    total = 0
    for kind, value in ops:
        if kind == "audio":
            n = int(value)
            if pattern == 0:
                pcm = silence(n / rate, rate)
            elif pattern == 1:
                pcm = tone(440, n / rate, rate)
            else:
                half = n // 2
                pcm = tone(300, half / rate, rate) + silence((n - half) / rate, rate)
            n = len(pcm) // 2
            total += n
            windows += w.feed(pcm)
        elif kind == "finalize":
            windows += w.finalize()
        else:
            w.window_seconds = value
        _check_tiling(windows, total - w.buffered_samples)
        assert w.received_samples == total
    windows += w.close()
    _check_tiling(windows, total)
    for win in windows[:-1]:
        assert win.end_sample - win.start_sample >= w.min_samples


def _noise(seconds: float, dbfs: float, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(round(seconds * RATE)) * 32767 * 10 ** (dbfs / 20)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def test_the_noise_floor_follows_a_noisy_classroom_but_not_speech() -> None:
    """Under steady -45 dBFS noise (above the fixed -50 dBFS threshold) windows of noise alone
    become silence once the floor is found; speech over the noise stays speech."""
    windower = Windower(RATE, 1.0, VadParams(threshold_dbfs=-50))
    noisy = [w.speech for w in windower.feed(_noise(30.0, -45.0))]
    assert noisy[0] is True  # before the floor is known: the quiet-room threshold
    assert not any(noisy[20:])  # within 20 s the floor is found
    loud = np.frombuffer(tone(440, 2.0, amplitude=0.05), dtype="<i2").astype(np.int32)
    mixed = np.frombuffer(_noise(2.0, -45.0, seed=4), dtype="<i2").astype(np.int32) + loud
    spoken = windower.feed(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
    assert all(w.speech for w in spoken)


def test_the_noise_floor_is_not_lifted_by_half_a_minute_of_steady_sound() -> None:
    windower = Windower(RATE, 1.0, VadParams(threshold_dbfs=-50))
    assert all(w.speech for w in windower.feed(tone(440, 30.0, amplitude=0.3)))


def test_the_noise_floor_drops_at_once_in_a_quiet_room() -> None:
    floor = NoiseFloor.quiet_room(VadParams(threshold_dbfs=-50, margin_db=10))
    assert floor.threshold(VadParams(threshold_dbfs=-50)) == -50
    floor.update(np.full(50, -40.0))
    assert floor.level == pytest.approx(-59.0)  # rose 1 dB in one second, no more
    floor.update(np.full(50, -80.0))
    assert floor.level == -80.0 and floor.threshold(VadParams(threshold_dbfs=-50)) == -50
