"""SIGTERM with the local model busy: the process exits within its grace plus a second.

A native decode cannot be interrupted and Python joins its thread at exit; a client
that never answers the close handshake could hold the drain for the close timeout.
Neither may keep the process: windows that cannot finish are dropped ``SHUTDOWN``, the
close handshake is bounded while shutting down, and the process leaves without a decode
still running once its bound is reached.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.support.helpers import TIMEOUT_SCALE, http_json, spawn_gateway, t, token
from tests.support.speech import sentence

pytestmark = pytest.mark.slow
GRACE = 2.0
#: What process start-up and teardown may add on a loaded machine, beyond the contract.
SLACK = 1.0 * TIMEOUT_SCALE


async def _read(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    return [json.loads(m.data) async for m in ws if m.type is aiohttp.WSMsgType.TEXT]


async def test_sigterm_with_decodes_running_exits_within_the_grace(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    gateway = await spawn_gateway(
        fake_whisper,
        tmp_path / "data",
        STT_PROVIDER="local",
        OPENAI_API_KEY="",
        OPENAI_BASE_URL="",
        STT_WINDOW_SECONDS="5",
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    pcm = sentence("Today we will read the chapter about plants and how they make food. " * 3)
    try:
        port = await gateway.listening()
        async with asyncio.timeout(t(60)):
            while (await http_json("GET", f"http://127.0.0.1:{port}/api/v1/ready"))[0] != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        url = f"ws://127.0.0.1:{port}/api/v1/listen"
        async with aiohttp.ClientSession() as session:
            sockets = []
            for n in range(4):  # the last one never answers the close handshake
                ws = await session.ws_connect(
                    url,
                    headers={"Authorization": f"Bearer {token(group=f'g{n}')}"},
                    autoclose=n < 3,
                )
                await ws.receive()
                for i in range(0, len(pcm), 3200):
                    await ws.send_bytes(pcm[i : i + 3200])
                sockets.append(ws)
            readers = [asyncio.create_task(_read(ws)) for ws in sockets[:3]]
            await asyncio.sleep(1.0)  # windows are queued for the model, one is decoding
            sent = time.monotonic()
            gateway.proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(gateway.proc.wait(), t(60))
            took = time.monotonic() - sent
            answers = await asyncio.gather(*readers)
            for ws in sockets:
                await ws.close()
    finally:
        await gateway.stop()
    assert code == 0
    assert took <= GRACE + 1.0 + SLACK, took
    for messages in answers:
        assert messages[-1]["type"] == "Termination"
        assert messages[-1]["reason"] == "server_shutdown"
        reasons = {m.get("reason") for m in messages if m["type"] == "Transcript"}
        assert reasons <= {None, "SHUTDOWN"}
    events = [line.get("event") for line in gateway.lines]
    assert "gateway.stopped" in events
