"""Pay only for speech: pauses are shortened in the audio sent, and the bill follows it."""

from __future__ import annotations

import pytest

from gateway.budget.pricing import usd
from tests.conftest import GatewayFactory
from tests.support.audio import silence, tone
from tests.support.budget import usage
from tests.support.helpers import stream_and_close

PRICE_PER_MINUTE = 0.006  # whisper-1 in the dev policy


async def test_pauses_are_not_sent_nor_billed(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=5.0)
    pcm = tone(440, 1.0) + silence(3.0) + tone(440, 1.0) + silence(1.0)
    stream = await stream_and_close(server, pcm)
    transcripts = stream.of_type("Transcript")
    assert [m["status"] for m in transcripts] == ["ok", "ok"]
    # the first window ends in the middle of the 3 s pause; each keeps 0.16 s of pause
    # beside its speech and loses the rest
    assert [m["end"] for m in transcripts] == pytest.approx([2.5, 6.0])
    billed = [m["billed_seconds"] for m in transcripts]
    assert billed == pytest.approx([1.16, 1.32], abs=0.01)
    sent = sorted(r.duration for r in server.fake.received)  # answered in any order
    assert sent == pytest.approx(sorted(billed), abs=0.01)
    termination = stream.of_type("Termination")[0]
    assert termination["audio_seconds"] == pytest.approx(6.0)
    spent = (await usage(server, "s-1"))["spent_usd"]
    expected = sum(usd(round(PRICE_PER_MINUTE * b / 60 * 1_000_000)) for b in billed)
    assert spent == pytest.approx(expected, abs=2e-6)
    metrics = server.state.metrics
    assert metrics.audio_not_sent.labels(reason="pause")._value.get() == pytest.approx(
        6.0 - sum(billed), abs=0.02
    )
    assert metrics.audio_speech._value.get() == pytest.approx(2.0, abs=0.05)
    assert metrics.audio_billed.labels(model="whisper-1")._value.get() == pytest.approx(
        sum(billed), abs=0.01
    )
    await stream.close()


async def test_silent_windows_are_counted_as_not_sent(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=1.0)
    stream = await stream_and_close(server, silence(3.0))
    assert {m["status"] for m in stream.of_type("Transcript")} == {"silence"}
    assert server.fake.received == []
    metrics = server.state.metrics
    assert metrics.audio_not_sent.labels(reason="silence")._value.get() == pytest.approx(3.0)
    assert metrics.audio_speech._value.get() == 0
    await stream.close()


async def test_shortening_can_be_turned_off(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=5.0, STT_SHORTEN_PAUSES=False)
    stream = await stream_and_close(server, tone(440, 1.0) + silence(3.0) + tone(440, 1.0))
    transcripts = stream.of_type("Transcript")
    assert sum(m["billed_seconds"] for m in transcripts) == pytest.approx(5.0, abs=0.01)
    await stream.close()
