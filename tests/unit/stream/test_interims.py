"""Interims in the session core, synchronously: when they are asked for, what an answer
becomes, and that they never touch a window or its Transcript."""

from __future__ import annotations

from dataclasses import replace

from gateway.stream.interims import MAX_STRETCH
from tests.support.audio import silence, tone
from tests.unit.stream.test_core import LIMITS, Harness

LONG = replace(LIMITS, window_max_seconds=30.0)


def _speaking(window_seconds: float = 10.0, interval: float = 0.5) -> Harness:
    return Harness(LONG, interim_interval=interval, window_seconds=window_seconds)


def test_no_interims_unless_asked_for() -> None:
    h = Harness()
    h.audio(tone(440, 2.0))
    assert h.interim_asks == [] and h.sent[0]["config"]["interim_results"] is False
    assert _speaking().sent[0]["config"]["interim_results"] is True


def test_while_speech_goes_on_the_open_window_is_asked_for_every_interval() -> None:
    h = _speaking()
    h.audio(tone(440, 0.6))
    [first] = h.interim_asks
    assert (first.seq, first.start_sample) == (0, 0)
    assert first.end_sample <= len(tone(440, 0.6)) // 2 and first.pcm
    h.core.interim_resolved(first, "Maya has", h.now)
    h.take()
    [interim] = h.of("Interim")
    assert interim == {
        "type": "Interim",
        "seq": 0,
        "start": 0.0,
        "end": first.end_sample / 16000,
        "text": "Maya has",
        "stable_text": "",
    }
    h.audio(tone(440, 0.6))
    second = h.interim_asks[-1]
    assert second is not first and second.end_sample > first.end_sample
    h.core.interim_resolved(second, "Maya has twelve", h.now)
    h.take()
    assert h.of("Interim")[-1]["stable_text"] == "Maya has"


def test_one_request_at_a_time() -> None:
    h = _speaking()
    h.audio(tone(440, 3.0))
    assert len(h.interim_asks) == 1  # still unanswered: no second request


def test_no_request_without_new_speech() -> None:
    h = _speaking()
    asked = []
    for chunk in [tone(440, 0.1)] * 6 + [silence(0.1)] * 30:
        h.audio(chunk)
        for ask in h.interim_asks:
            h.core.interim_resolved(ask, "hello", h.now)
        asked += h.interim_asks
        h.interim_asks.clear()
    # asks while the tone lasts (and one for its tail), none through three seconds of silence
    assert asked and max(a.end_sample for a in asked) <= 16000 * 1.2


def test_an_answer_for_a_closed_window_is_dropped_and_none_follows_its_transcript() -> None:
    h = _speaking()
    h.audio(tone(440, 0.6))
    [late] = h.interim_asks
    h.text('{"type":"Finalize"}')  # window 0 closes while its interim is being decoded
    h.core.interim_resolved(late, "too late", h.now)
    h.take()
    h.answer(0)
    assert h.of("Interim") == []
    assert [m["type"] for m in h.sent] == ["Begin", "Transcript"]


def test_a_busy_decoder_stretches_the_interval_until_one_is_decoded() -> None:
    h = _speaking(window_seconds=30.0, interval=0.5)
    schedule = h.core._interims
    assert schedule is not None
    for expected in (1.0, 2.0, 4.0, 4.0):
        h.audio(tone(440, schedule.interval + 0.1))
        h.core.interim_resolved(h.interim_asks[-1], None, h.now, busy=True)
        assert schedule.interval == min(expected, 0.5 * MAX_STRETCH)
    h.audio(tone(440, schedule.interval + 0.1))
    h.core.interim_resolved(h.interim_asks[-1], "back", h.now)
    assert schedule.interval == 0.5


def test_after_close_stream_no_interim_is_asked_or_sent() -> None:
    h = _speaking()
    h.audio(tone(440, 0.6))
    [asked] = h.interim_asks
    h.text('{"type":"CloseStream"}')
    h.core.interim_resolved(asked, "late", h.now)
    h.take()
    h.answer(0)
    assert h.of("Interim") == [] and h.core.done


def test_interims_change_no_window() -> None:
    """The same audio and answers, with and without interims: the same Transcripts."""
    runs = []
    for interval in (None, 0.5):
        h = Harness(LONG, interim_interval=interval)
        for i, chunk in enumerate((tone(300, 1.3), silence(0.5), tone(500, 2.2), silence(0.4))):
            h.audio(chunk)
            for ask in list(h.interim_asks):
                h.core.interim_resolved(ask, f"guess {i}", h.now)
                h.interim_asks.remove(ask)
            h.take()
        h.text('{"type":"CloseStream"}')
        for seq in sorted(h.jobs):
            h.answer(seq)
        runs.append([m for m in h.sent if m["type"] in ("Transcript", "Termination")])
    assert runs[0] == runs[1]


def test_a_settled_window_makes_the_next_interim_due_at_once() -> None:
    """Skipped while a window's final decoded, the stretched interval would keep the next
    sentence's first words back: the next frame after the final asks."""
    h = _speaking()
    schedule = h.core._interims
    assert schedule is not None
    h.audio(tone(440, 0.6))
    h.core.interim_resolved(h.interim_asks.pop(), "words", h.now)
    h.text('{"type":"Finalize"}')
    assert list(h.jobs) == [0]  # window 0 closed; its final goes to the model
    for gap in (0.55, 1.05):  # the model is busy with it: interims of window 1 are skipped
        h.audio(tone(440, gap))
        [skipped] = h.interim_asks
        assert skipped.seq == 1
        h.core.interim_resolved(h.interim_asks.pop(), None, h.now, busy=True)
    assert schedule.next_due - h.now >= 2.0  # stretched
    h.answer(0)
    h.audio(tone(440, 0.05))
    [asked] = h.interim_asks
    assert asked.seq == 1


def test_no_interim_starts_while_the_window_is_about_to_close() -> None:
    """Within 0.8 s of its 5 s target a window closes at its next pause: a decode started
    then would hold its final up, for words the final brings a moment later."""
    h = _speaking(window_seconds=5.0)
    asked = []
    for _ in range(60):
        h.audio(tone(440, 0.1))
        for ask in h.interim_asks:
            h.core.interim_resolved(ask, "words", h.now)
        asked += h.interim_asks
        h.interim_asks.clear()
    open_window = [a for a in asked if a.seq == 0]
    assert open_window and max(a.seconds for a in open_window) < 4.2
    assert h.now > 5.0 and not h.jobs  # still open past its target: no pause in a tone
