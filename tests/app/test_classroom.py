"""25 groups streaming distinct tones through one gateway at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import GatewayFactory
from tests.support.audio import silence, tone
from tests.support.helpers import Stream, assert_tiling, connect, eventually, token

GROUPS = 25


async def _group(server: object, index: int) -> tuple[int, Stream]:
    freq = 200 + 40 * index
    stream = await connect(server, token("s-1", f"group-{index}"))  # type: ignore[arg-type]
    begin = await stream.next()
    assert begin["group_id"] == f"group-{index}"
    pcm = tone(freq, 1.5) + silence(0.6) + tone(freq, 1.4)
    await stream.send_audio(pcm, pace=0.01)
    await stream.send_json({"type": "CloseStream"})
    await stream.collect(timeout=60)
    return freq, stream


async def test_25_groups_get_only_their_own_transcripts(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=1.0)
    server.fake.behaviour.latency_ms = 150
    server.fake.behaviour.jitter_ms = 100
    results = await asyncio.gather(*(_group(server, i) for i in range(GROUPS)))
    for freq, stream in results:
        transcripts = stream.of_type("Transcript")
        assert_tiling(transcripts, 3.5)
        ok = [m for m in transcripts if m["status"] == "ok"]
        assert ok, "every group has speech"
        assert all(m["status"] in ("ok", "silence") for m in transcripts)
        for m in ok:
            assert f"tone {freq} Hz" in m["text"], (freq, m["text"])
        term = stream.of_type("Termination")[0]
        assert term["windows"] == len(transcripts)
        assert term["dropped"] == 0
        assert stream.close_code == 1000
        await stream.close()
    metrics = server.state.metrics
    await eventually(lambda: len(server.state.registry) == 0)
    assert metrics.sessions.labels(outcome="accepted")._value.get() == GROUPS
    assert metrics.sessions_ended.labels(reason="client_close")._value.get() == GROUPS
    assert metrics.sessions_active._value.get() == 0
    assert metrics.pending_audio._value.get() == pytest.approx(0, abs=1e-6)
