"""First-words latency: the first message with text that covers half a second of a
sentence, counted from when the sentence's first second was said."""

from __future__ import annotations

import pytest

from loadtest.quality.recording import Spoken
from loadtest.quality.scoring import Received, first_words_delays

SENTENCES = [Spoken("Maya has twelve apples.", 1.0, 4.0), Spoken("How many?", 6.0, 7.5)]


def _msg(kind: str, start: float, end: float, text: str, arrived: float) -> Received:
    return Received({"type": kind, "start": start, "end": end, "text": text}, arrived)


def test_an_interim_covering_half_a_second_shows_the_first_words() -> None:
    received = [
        _msg("Interim", 0.0, 1.3, "Maya", 1.6),  # covers 0.3 s of the sentence: not yet
        _msg("Interim", 0.0, 1.8, "Maya has", 2.3),  # 0.8 s: the first words show
        _msg("Transcript", 0.0, 5.0, "Maya has twelve apples.", 6.4),
        _msg("Transcript", 5.0, 8.0, "How many?", 9.0),
    ]
    assert first_words_delays(received, SENTENCES, 1.0) == pytest.approx([0.3, 2.0])


def test_empty_text_never_counts_and_times_scale_with_speed() -> None:
    received = [
        _msg("Interim", 0.0, 3.0, "", 1.0),
        _msg("Transcript", 0.0, 5.0, "Maya has twelve apples.", 3.0),
    ]
    assert first_words_delays(received, SENTENCES, 2.0) == pytest.approx([2.0])  # 3 − 2/2
