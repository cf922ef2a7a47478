"""SIGTERM drains a live session in a real gateway process with nothing lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.support.audio import tone
from tests.support.helpers import (
    GatewayServer,
    assert_tiling,
    connect,
    open_stream,
    spawn_gateway,
    t,
    token,
)

pytestmark = pytest.mark.slow


async def test_sigterm_drains_live_session(fake_whisper: FakeWhisper, tmp_path: Path) -> None:
    fake_whisper.behaviour.latency_ms = 1200
    gw = await spawn_gateway(fake_whisper, tmp_path, SHUTDOWN_GRACE_SECONDS="20")
    try:
        port = await gw.listening()
        server = GatewayServer(None, None, port, fake_whisper)  # type: ignore[arg-type]
        stream = await open_stream(server, token())
        await stream.send_audio(tone(440, 2.5))
        await asyncio.sleep(0.2)
        gw.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.http}/api/v1/ready") as r,
        ):
            body = await r.json()
            assert r.status == 503 and body["status"] == "not_ready" and body["draining"]
        late = await connect(server, token(group="late"))
        error = await late.next()
        assert error["code"] == "OVERLOADED"
        await late.collect()
        assert late.close_code == 1013
        await late.close()
        messages = await stream.collect(timeout=30)
        transcripts = stream.of_type("Transcript")
        assert_tiling(transcripts, 2.5)
        assert all(m["status"] == "ok" for m in transcripts)
        term = messages[-1]
        assert term["type"] == "Termination" and term["reason"] == "server_shutdown"
        assert term["windows"] == 3
        assert stream.close_code == 1001
        await stream.close()
        assert await asyncio.wait_for(gw.proc.wait(), t(30)) == 0
        events = [line.get("event") for line in gw.lines]
        assert "gateway.draining" in events and "gateway.stopped" in events
    finally:
        if gw.proc.returncode is None:
            gw.proc.kill()
            await gw.proc.wait()
