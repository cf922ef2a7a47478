"""What the resume tests share: a stream of speech with pauses, and the check that a
session's connections together delivered it whole."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.audio import silence, tone
from tests.support.helpers import Stream, assert_tiling

RATE = 16000
#: Six windows of speech, each ending in a pause (1 s windows).
SPEECH = (tone(440, 0.8) + silence(0.3)) * 6
SECONDS = len(SPEECH) / 2 / RATE


def transcripts_of(*streams: Stream) -> list[dict[str, Any]]:
    """Every Transcript the client got, deduplicated by seq (a replay repeats one exactly)."""
    by_seq: dict[int, dict[str, Any]] = {}
    for stream in streams:
        for message in stream.of_type("Transcript"):
            assert by_seq.setdefault(message["seq"], message) == message
    return [by_seq[seq] for seq in sorted(by_seq)]


def one_whole_session(*streams: Stream) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The session's Transcripts over its connections tile all of SPEECH, and its one
    Termination (on the last connection) counts them all; both, for further checks."""
    transcripts = transcripts_of(*streams)
    assert_tiling(transcripts, SECONDS)
    [termination] = streams[-1].of_type("Termination")
    assert termination["windows"] == len(transcripts)
    assert termination["audio_seconds"] == pytest.approx(SECONDS)
    return transcripts, termination
