"""Segments Whisper marks as non-speech or looping never reach a transcript."""

from __future__ import annotations

import pytest

from gateway.simulated.whisper import HALLUCINATED
from gateway.stt.suppression import filter_segments, suppression_reason
from gateway.stt.transcriber import Segment
from tests.support.audio import tone
from tests.support.helpers import GatewayServer, stream_and_close


def seg(text: str, no_speech: float = 0.01, logprob: float = -0.2, ratio: float = 1.3) -> Segment:
    return Segment(0.0, 1.0, text, no_speech, logprob, ratio)


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (seg(" Today we read."), None),
        (seg(" Thanks for watching!", no_speech=0.8, logprob=-1.2), "no_speech"),
        (seg(" Quiet but sure.", no_speech=0.8, logprob=-0.3), None),  # confident: kept
        (seg(" Unsure but speech.", no_speech=0.3, logprob=-1.5), None),
        (seg(" the the the the the the the", ratio=3.1), "looping"),
    ],
)
def test_whispers_own_thresholds(segment: Segment, reason: str | None) -> None:
    assert suppression_reason(segment) == reason


def test_kept_text_and_reasons() -> None:
    filtered = filter_segments(
        [
            seg(" Open your books."),
            seg(" Thanks.", no_speech=0.9, logprob=-1.4),
            seg(" la la la la la la la la", ratio=4.0),
            seg(" Page ten."),
        ]
    )
    assert filtered.text == "Open your books. Page ten."
    assert filtered.suppressed == ("no_speech", "looping")
    assert filter_segments([seg(" Thanks.", no_speech=0.9, logprob=-1.4)]).text == ""


async def test_the_gateway_drops_what_whisper_flags(gateway: GatewayServer) -> None:
    """whisper-1 is asked for verbose_json; the invented segments never reach the class, and
    they are counted."""
    gateway.fake.behaviour.hallucinate = True
    stream = await stream_and_close(gateway, tone(440, 2.0))
    ok = [m for m in stream.of_type("Transcript") if m["status"] == "ok"]
    assert len(ok) == 2
    for message in ok:
        assert message["text"].startswith("[simulated] tone 440 Hz")
        assert HALLUCINATED not in message["text"] and "the the" not in message["text"]
        assert message["billed_seconds"] > 0
    assert {r.response_format for r in gateway.fake.received} == {"verbose_json"}
    suppressed = gateway.state.metrics.segments_suppressed
    assert suppressed.labels(reason="no_speech")._value.get() == 2
    assert suppressed.labels(reason="looping")._value.get() == 2
    await stream.close()
