"""A finishing session keeps answering the client's pings.

After ``CloseStream`` (or while the gateway drains) the last windows may wait on a
slow upstream for seconds. A client with keepalive pings — the websockets library's
defaults, browsers behind some proxies — closes the connection when its pings go
unanswered; the gateway keeps reading the socket until the session ends, so the
pings are answered and the last ``Transcript``s and the ``Termination`` arrive.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from gateway.stream.ending import SHUTDOWN
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import eventually, t, token

#: The upstream answers each window after this long: many client ping timeouts.
UPSTREAM_MS = 2500
PING_INTERVAL, PING_TIMEOUT = 0.2, 0.5


@pytest.mark.parametrize("how", ["CloseStream", "drain"])
async def test_pings_are_answered_while_the_last_windows_finish(
    make_gateway: GatewayFactory, how: str
) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=1.0)
    server.fake.behaviour.latency_ms = UPSTREAM_MS
    messages: list[dict[str, Any]] = []
    async with websockets.connect(
        server.ws_url,
        subprotocols=["token", token()],  # type: ignore[list-item]
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    ) as ws:
        messages.append(json.loads(await ws.recv()))
        pcm = tone(440, 2.0)
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
        if how == "CloseStream":
            await ws.send(json.dumps({"type": "CloseStream"}))
        else:
            await eventually(lambda: server.fake.in_flight > 0)
            for session in server.state.registry.sessions():
                session.request_end(SHUTDOWN)
        async with asyncio.timeout(t(20)):
            async for raw in ws:
                messages.append(json.loads(raw))
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "Begin" and kinds[-1] == "Termination", kinds
    assert ws.close_code == (1000 if how == "CloseStream" else 1001)
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    assert transcripts and all(m["status"] in ("ok", "silence") for m in transcripts)
    assert messages[-1]["reason"] == ("client_close" if how == "CloseStream" else "server_shutdown")


async def test_a_client_that_closes_while_its_session_finishes_is_let_go(
    make_gateway: GatewayFactory,
) -> None:
    """Reading on also notices a client that leaves after CloseStream: its windows in
    flight are given up (their holds released), not waited for."""
    server = await make_gateway(STT_WINDOW_SECONDS=1.0)
    server.fake.behaviour.latency_ms = 10_000
    async with websockets.connect(
        server.ws_url,
        subprotocols=["token", token()],  # type: ignore[list-item]
    ) as ws:
        await ws.recv()
        pcm = tone(440, 2.0)
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
        await ws.send(json.dumps({"type": "CloseStream"}))
        await eventually(lambda: server.fake.in_flight > 0)
    await eventually(lambda: len(server.state.registry) == 0)
    ended = server.state.metrics.sessions_ended.labels(reason="disconnected")._value.get()
    assert ended == 1
