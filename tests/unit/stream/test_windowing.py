from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stream.audio_window import Window
from gateway.stream.pauses import PAUSE_PAD_SECONDS, CutRule, choose_cut
from gateway.stream.vad import FRAME_SECONDS, NoiseFloor, VadParams, frame_levels_dbfs, is_speech
from gateway.stream.windowing import Windower
from tests.support.audio import silence, tone
from tests.support.speech import sentence

RATE = 16000


def _check_tiling(windows: list[Window], total_samples: int) -> None:
    assert [w.seq for w in windows] == list(range(len(windows)))
    position = 0
    for w in windows:
        assert w.start_sample == position
        assert w.end_sample > w.start_sample
        assert 0 < len(w.pcm) <= 2 * (w.end_sample - w.start_sample)
        if not w.speech:
            assert len(w.pcm) == 2 * (w.end_sample - w.start_sample)  # never shortened
        position = w.end_sample
    assert position == total_samples


def _speech(*parts: tuple[str, float]) -> bytes:
    """``("s", 1.2)`` is 1.2 s of a loud tone (speech), ``("p", 0.4)`` 0.4 s of pause."""
    return b"".join(tone(300, sec) if kind == "s" else silence(sec) for kind, sec in parts)


def test_continuous_sound_is_cut_at_the_target() -> None:
    """No pause and nothing quieter anywhere: the window ends at its target."""
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(tone(440, 3.5))
    assert [round(x.duration, 3) for x in out] == [1.0, 1.0, 1.0]
    out += w.close()
    _check_tiling(out, round(3.5 * RATE))
    assert out[-1].from_finalize and not out[0].from_finalize
    assert all(x.speech for x in out)


def test_silence_is_not_speech_and_is_not_sent_shortened() -> None:
    w = Windower(RATE, window_seconds=1.0)
    out = w.feed(silence(3.0)) + w.close()
    _check_tiling(out, 3 * RATE)
    assert not any(x.speech for x in out)
    assert all(0.5 <= x.duration <= 1.3 for x in out[:-1])


def test_finalize_closes_short_window_but_not_below_minimum() -> None:
    w = Windower(RATE, window_seconds=5.0)
    assert w.feed(tone(300, 0.05)) == []
    assert w.finalize() == []  # 50 ms: carried into the next window
    w.feed(tone(300, 0.5))
    [win] = w.finalize()
    assert win.from_finalize and win.start_sample == 0
    assert win.end_sample == round(0.55 * RATE)


def test_tail_shorter_than_minimum_is_reported_at_close() -> None:
    w = Windower(RATE, window_seconds=1.0, max_seconds=1.0)
    out = w.feed(tone(300, 1.05)) + w.close()
    assert len(out) == 2
    assert out[1].duration < 0.1 and not out[1].speech


def test_window_ends_in_the_middle_of_the_longest_pause() -> None:
    w = Windower(RATE, window_seconds=5.0)
    pcm = _speech(("s", 2.8), ("p", 0.3), ("s", 1.0), ("p", 0.6), ("s", 2.0))
    [first] = w.feed(pcm)
    assert first.end == pytest.approx(4.1 + 0.3, abs=0.02)  # the 0.6 s pause, not the 0.3 s


def test_equal_pauses_the_quieter_wins() -> None:
    w = Windower(RATE, window_seconds=5.0)
    hum = tone(300, 0.5, amplitude=0.002)  # about -57 dBFS: unvoiced, but not silent
    pcm = _speech(("s", 2.8)) + hum + _speech(("s", 1.0), ("p", 0.5), ("s", 2.0))
    [first] = w.feed(pcm)
    assert first.end == pytest.approx(4.3 + 0.25, abs=0.02)


def test_a_pause_before_the_minimum_length_is_not_used() -> None:
    w = Windower(RATE, window_seconds=5.0)
    pcm = _speech(("s", 1.0), ("p", 0.5), ("s", 4.6), ("p", 0.5), ("s", 1.0))
    [first] = w.feed(pcm)
    assert 6.1 < first.end < 6.5  # past the target, in the pause (as much of it as the bound saw)


def test_window_runs_past_the_target_to_reach_a_pause() -> None:
    w = Windower(RATE, window_seconds=5.0)
    assert w.feed(_speech(("s", 5.6))) == []  # no pause yet: wait for one
    [first] = w.feed(_speech(("p", 0.5), ("s", 1.0)))
    assert 5.6 < first.end < 6.1 and first.duration > 5.0


def test_a_pause_under_way_at_the_target_is_awaited() -> None:
    """A sentence that ends just before the target: wait to see the pause, cut in it."""
    w = Windower(RATE, window_seconds=5.0)
    assert w.feed(_speech(("s", 4.9), ("p", 0.2))) == []
    [first] = w.feed(silence(0.3))
    assert 4.9 < first.end <= 5.4


def test_no_pause_ends_at_the_quietest_point_before_the_bound() -> None:
    w = Windower(RATE, window_seconds=5.0, max_seconds=15.0)
    dip = tone(300, 0.06, amplitude=0.05)  # quieter, but still voiced
    pcm = tone(300, 3.3) + dip + tone(300, 5.0)
    out = w.feed(pcm)
    assert len(out) == 1
    assert 3.3 <= out[0].end <= 3.36


def test_windows_never_pass_the_bound() -> None:
    w = Windower(RATE, window_seconds=5.0, max_seconds=5.5)
    out = w.feed(tone(300, 20.0)) + w.close()
    assert max(x.duration for x in out) <= 5.5
    w = Windower(RATE, window_seconds=4.0, max_seconds=4.0)
    out = w.feed(_speech(("s", 3.9), ("p", 0.5), ("s", 4.0))) + w.close()
    assert max(x.duration for x in out) <= 4.0


def test_long_pauses_are_shortened_in_the_audio_sent_and_speech_is_kept() -> None:
    w = Windower(RATE, window_seconds=8.0)
    speech_a, speech_b = tone(300, 1.0), tone(500, 1.2)
    pcm = silence(1.0) + speech_a + silence(2.0) + speech_b + silence(0.3)
    [win] = w.feed(pcm) + w.close()
    pad = 2 * round(PAUSE_PAD_SECONDS * RATE)
    assert win.duration == pytest.approx(5.5)
    assert win.speech and win.voiced_seconds == pytest.approx(2.2, abs=0.04)
    # lead-in, speech, two pads in place of the 2 s pause, speech, a pad of the pause at the end
    assert len(win.pcm) == pad + len(speech_a) + 2 * pad + len(speech_b) + pad
    assert win.sent_seconds == pytest.approx(1.0 + 1.2 + 4 * PAUSE_PAD_SECONDS)
    assert speech_a in win.pcm and speech_b in win.pcm


def test_shortening_can_be_turned_off() -> None:
    w = Windower(RATE, window_seconds=8.0, shorten_pauses=False)
    [win] = w.feed(tone(300, 1.0) + silence(3.0) + tone(300, 1.0)) + w.close()
    assert win.sent_seconds == win.duration


def test_window_length_can_change_between_feeds() -> None:
    """Adaptive windows: the target moves, the bound follows it up."""
    w = Windower(RATE, window_seconds=1.0, max_seconds=1.0)
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


def _shaped(shape: list[tuple[str, float]]) -> bytes:
    return b"".join(
        tone(300, sec)
        if kind == "s"
        else tone(200, sec, amplitude=0.002)
        if kind == "hum"
        else silence(sec)
        for kind, sec in shape
    )


_shapes = st.lists(
    st.tuples(st.sampled_from(["s", "p", "hum"]), st.floats(0.02, 3.0)), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(shape=_shapes, split=st.integers(1, 12000), target=st.sampled_from([1.0, 2.0, 5.0]))
def test_pause_windows_keep_every_voiced_frame_and_do_not_depend_on_message_size(
    shape: list[tuple[str, float]], split: int, target: float
) -> None:
    """Whatever the speech and pauses: windows tile, never pass the bound, every voiced frame of
    the input is sent in full, and the cuts are the same however the audio is split."""
    pcm = _shaped(shape)
    bound = target * 1.5
    whole = Windower(RATE, target, max_seconds=bound)
    at_once = whole.feed(pcm) + whole.close()
    pieces = Windower(RATE, target, max_seconds=bound)
    step = 2 * split
    chunked = [x for i in range(0, len(pcm), step) for x in pieces.feed(pcm[i : i + step])]
    chunked += pieces.close()
    _check_tiling(at_once, len(pcm) // 2)
    assert [(x.start_sample, x.end_sample) for x in at_once] == [
        (x.start_sample, x.end_sample) for x in chunked
    ]
    frame = int(RATE * FRAME_SECONDS)
    for win in at_once:
        assert win.duration <= bound + 1e-9
        if not win.speech:
            continue
        original = pcm[2 * win.start_sample : 2 * win.end_sample]
        levels = frame_levels_dbfs(original, RATE)
        for i in np.flatnonzero(levels > -50.0):
            assert original[2 * i * frame : 2 * (i + 1) * frame] in win.pcm


class _AskEveryFrame(Windower):
    """The reference: ask :func:`choose_cut` at every frame, skipping nothing."""

    def _next_cut(self, rule: CutRule) -> int | None:
        levels = self._whole_frame_levels()
        for count in range(rule.target, levels.size + 1):
            cut = choose_cut(levels[:count], self.threshold_dbfs, rule)
            if cut is not None:
                return cut
        return None


@settings(max_examples=150, deadline=None)
@given(shape=_shapes, split=st.integers(160, 12000), target=st.sampled_from([1.0, 2.0, 5.0]))
def test_asking_only_when_a_pause_changes_gives_the_same_windows(
    shape: list[tuple[str, float]], split: int, target: float
) -> None:
    pcm = _shaped(shape)
    cuts: list[list[tuple[int, int]]] = []
    for windower in (Windower(RATE, target), _AskEveryFrame(RATE, target)):
        step = 2 * split
        out = [x for i in range(0, len(pcm), step) for x in windower.feed(pcm[i : i + step])]
        cuts.append([(x.start_sample, x.end_sample) for x in out + windower.close()])
    assert cuts[0] == cuts[1]


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
    assert not any(noisy[2:])  # the first window sets the floor: found within 2 s
    loud = np.frombuffer(tone(440, 2.0, amplitude=0.05), dtype="<i2").astype(np.int32)
    mixed = np.frombuffer(_noise(2.0, -45.0, seed=4), dtype="<i2").astype(np.int32) + loud
    spoken = windower.feed(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
    spoken += windower.close()
    assert all(w.speech for w in spoken if w.end > 30.0 + 0.1)  # every window holding the tone


def test_the_noise_floor_is_not_lifted_by_steady_sound_or_by_speech() -> None:
    windower = Windower(RATE, 1.0, VadParams(threshold_dbfs=-50))
    assert all(w.speech for w in windower.feed(tone(440, 15.0, amplitude=0.3)))
    # a minute of talk without a pause between sentences: its dips keep the floor down
    talk = b"".join(sentence(text) for text in _TALK) * 3
    windower = Windower(RATE, 5.0, VadParams(threshold_dbfs=-50))
    windows = windower.feed(talk) + windower.close()
    assert sum(w.duration for w in windows) > 50
    assert all(w.speech for w in windows if w.duration >= 1.0)
    assert windower.threshold_dbfs < -40


_TALK = (
    "Today we will read the chapter about plants and how they make food from sunlight.",
    "Every green leaf has tiny openings that let air move in and out.",
    "The roots pull water from the soil and carry it up through the stem.",
    "Can anyone tell me what gas the leaves give back to the air?",
    "Oxygen, because the plant keeps the carbon and lets the oxygen go.",
)


def test_the_noise_floor_drops_at_once_in_a_quiet_room() -> None:
    floor = NoiseFloor.quiet_room(VadParams(threshold_dbfs=-50, margin_db=10))
    assert floor.threshold(VadParams(threshold_dbfs=-50)) == -50
    floor.update(np.full(50, -40.0))
    assert floor.level == pytest.approx(-45.0)  # the first window: up to a classroom's floor
    floor.update(np.full(50, -30.0))
    assert floor.level == pytest.approx(-44.0)  # then 1 dB a second, no more
    floor.update(np.full(50, -80.0))
    assert floor.level == -80.0 and floor.threshold(VadParams(threshold_dbfs=-50)) == -50
