"""Live words over a real socket: Interim messages while a window is open, never after its
Transcript, from an OpenAI-compatible interim server on loopback."""

from __future__ import annotations

import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.conftest import GatewayFactory
from tests.support.audio import silence, tone
from tests.support.helpers import GatewayServer, open_stream, token


@pytest.fixture
async def server(make_gateway: GatewayFactory, fake_whisper: FakeWhisper) -> GatewayServer:
    """Finals and interims both from the simulated Whisper on loopback."""
    return await make_gateway(
        STT_WINDOW_SECONDS=5.0,
        INTERIM_PROVIDER="openai",
        INTERIM_BASE_URL=fake_whisper.url,  # type: ignore[attr-defined]
        INTERIM_INTERVAL_SECONDS=0.3,
    )


async def test_interims_come_while_the_window_is_open_and_stop_at_its_transcript(
    server: GatewayServer,
) -> None:
    stream = await open_stream(server, token(), query={"interim_results": "true"})
    assert stream.messages[0]["config"]["interim_results"] is True
    await stream.send_audio(tone(440, 2.0) + silence(0.3), pace=0.1)  # real time
    messages = await stream.finish()
    kinds = [m["type"] for m in messages]
    interims = [m for m in messages if m["type"] == "Interim"]
    assert interims, kinds
    first_transcript = kinds.index("Transcript")
    assert max(i for i, k in enumerate(kinds) if k == "Interim") < first_transcript
    [transcript] = stream.of_type("Transcript")
    for interim in interims:
        assert interim["seq"] == 0 and interim["start"] == 0.0
        assert 0 < interim["end"] <= transcript["end"] + 1e-6
        assert interim["text"].startswith(interim["stable_text"])
        assert "simulated" in interim["text"]
    assert [i["end"] for i in interims] == sorted(i["end"] for i in interims)
    metrics = server.state.metrics
    assert metrics.interims.labels(outcome="sent")._value.get() >= len(interims)
    await stream.close()


async def test_no_interims_unless_the_client_asks(server: GatewayServer) -> None:
    stream = await open_stream(server, token())
    assert stream.messages[0]["config"]["interim_results"] is False
    await stream.send_audio(tone(440, 1.2), pace=0.1)
    await stream.finish()
    assert stream.of_type("Interim") == [] and stream.of_type("Transcript")
    await stream.close()


async def test_interim_results_must_be_true_or_false(server: GatewayServer) -> None:
    stream = await open_stream(server, token(), query={"interim_results": "yes"})
    assert stream.messages[0]["type"] == "Error" and stream.messages[0]["code"] == "BAD_CONFIG"
    await stream.close()
