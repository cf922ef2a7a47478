"""The Python client against a real gateway, through a TCP proxy that cuts its connections:
it resumes, sends the audio again from where the gateway has it, and hands out every
window exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateway.client import ListenStream
from gateway.simulated.whisper import FakeWhisper
from loadtest.proxy import CuttingProxy
from tests.support.audio import silence, tone
from tests.support.budget import usage
from tests.support.helpers import GatewayServer, assert_tiling, t, token

RATE = 16000
FRAME = 3200
SPEECH = (tone(440, 0.8) + silence(0.3)) * 8
SECONDS = len(SPEECH) / 2 / RATE


async def _stream(
    proxy: CuttingProxy,
    jwt: str,
    pcm: bytes,
    before_frame: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[ListenStream, list[dict[str, Any]]]:
    """Stream ``pcm`` in 100 ms frames (a little faster than real time) through ``proxy``,
    ``before_frame(i)`` awaited before frame ``i`` (the network's doings); every message
    handed out."""
    url = proxy.url("ws") + "/api/v1/listen"
    messages: list[dict[str, Any]] = []
    async with ListenStream(url, jwt) as stream:

        async def send() -> None:
            for i in range(0, len(pcm), FRAME):
                if before_frame is not None:
                    await before_frame(i // FRAME)
                await stream.send(pcm[i : i + FRAME])
                await asyncio.sleep(0.02)
            await stream.finish()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(t(60)):
            async for message in stream:
                messages.append(message)
        await sender
    return stream, messages


def _cuts(proxy: CuttingProxy, *frames: int) -> Callable[[int], Awaitable[None]]:
    async def cut(frame: int) -> None:
        if frame in frames:
            proxy.cut()

    return cut


@pytest.fixture
async def proxy(gateway: GatewayServer) -> Any:
    cutting = await CuttingProxy(("127.0.0.1", gateway.port)).start()
    yield cutting
    await cutting.close()


async def test_the_client_survives_cut_connections_with_every_window_once(
    gateway: GatewayServer, proxy: CuttingProxy, fake_whisper: FakeWhisper
) -> None:
    stream, messages = await _stream(proxy, token(), SPEECH, _cuts(proxy, 20, 45))
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    assert_tiling(transcripts, SECONDS)  # no gap, no duplicate, contiguous seq
    begins = [m for m in messages if m["type"] == "Begin"]
    assert [b["resumed"] for b in begins] == [False, True, True]
    assert len({b["session_id"] for b in begins}) == 1 and stream.resumes == 2
    [termination] = [m for m in messages if m["type"] == "Termination"]
    assert termination["windows"] == len(transcripts)
    assert termination["audio_seconds"] == pytest.approx(SECONDS)
    assert stream.close_code == 1000 and proxy.connections == 3
    ok = [m for m in transcripts if m["status"] == "ok"]
    assert len(fake_whisper.received) == len(ok)  # each window went upstream once
    spent = (await usage(gateway, "s-1"))["spent_usd"]
    assert spent == pytest.approx(termination["cost_usd"])


async def test_the_client_does_not_come_back_after_a_final_close(
    gateway: GatewayServer, proxy: CuttingProxy
) -> None:
    stream, messages = await _stream(proxy, "not-a-token", SPEECH[: RATE * 2])
    assert [m["type"] for m in messages] == ["Error"] and messages[0]["code"] == "UNAUTHORIZED"
    assert stream.close_code == 4001 and proxy.connections == 1


async def test_a_session_gone_meanwhile_goes_on_as_a_new_one_from_the_last_transcript(
    make_gateway: Any,
) -> None:
    server = await make_gateway(RESUME_SECONDS=1)
    cutting = await CuttingProxy(("127.0.0.1", server.port)).start()

    async def outage(frame: int) -> None:
        if frame == 30:  # the network goes away for longer than RESUME_SECONDS
            cutting.refusing = True
            cutting.cut()
            await asyncio.sleep(2.5)
            cutting.refusing = False

    try:
        _, messages = await _stream(cutting, token(), SPEECH, outage)
    finally:
        await cutting.close()
    begins = [m for m in messages if m["type"] == "Begin"]
    assert len({b["session_id"] for b in begins}) == 2 and not begins[-1]["resumed"]
    assert any(m["type"] == "Warning" and m["code"] == "RESUME_FAILED" for m in messages)
    new_from = messages.index(begins[-1])
    first_session = [m for m in messages[:new_from] if m["type"] == "Transcript"]
    [termination] = [m for m in messages if m["type"] == "Termination"]
    covered = first_session[-1]["end"] if first_session else 0.0
    # The new session starts where the last Transcript of the old one ended: no audio lost.
    assert covered + termination["audio_seconds"] == pytest.approx(SECONDS, abs=1e-3)


async def test_a_refused_first_connection_is_tried_again_unless_told_not_to(
    make_gateway: Any,
) -> None:
    """A gateway at its limit refuses a new stream (OVERLOADED, 1013, ``retry_after``): by
    default the client comes back after it and streams once there is room; a load harness
    measuring capacity asks for the refusal itself."""
    server = await make_gateway(MAX_SESSIONS=1)
    url = server.ws_url
    async with ListenStream(url, token(group="g-0")) as holder:
        await holder.__anext__()  # Begin: the gateway is full
        async with ListenStream(url, token(group="g-1"), retry_refused=False) as told:
            said = [m async for m in told]
        assert [m["type"] for m in said] == ["Error"] and said[0]["code"] == "OVERLOADED"
        assert told.close_code == 1013 and told.resumes == 0
        waiting = ListenStream(url, token(group="g-1"))
        async with waiting:
            await asyncio.sleep(0.3)
            await holder.finish()
            first = await asyncio.wait_for(waiting.__anext__(), t(20))
            assert first["type"] == "Error" and first["retry_after"] > 0
            second = await asyncio.wait_for(waiting.__anext__(), t(20))
            assert second["type"] == "Begin" and waiting.resumes == 1


async def test_a_first_connection_dropped_before_its_begin_is_tried_again_unlike_a_refusal(
    gateway: GatewayServer, proxy: CuttingProxy
) -> None:
    """A connection the network drops between the handshake and the ``Begin`` was not
    refused: a harness that asks for refusals still reconnects and streams its audio."""

    async def handshake_then_gone(connection: ServerConnection) -> None:
        proxy.target = ("127.0.0.1", gateway.port)  # the network comes back for the next
        connection.transport.abort()  # RST right after the 101, no Begin, no close frame

    async with serve(handshake_then_gone, "127.0.0.1", 0) as flaky:
        proxy.target = ("127.0.0.1", flaky.sockets[0].getsockname()[1])
        url = proxy.url("ws") + "/api/v1/listen"
        async with ListenStream(url, token(), retry_refused=False) as stream:
            await stream.send(SPEECH[: RATE * 2 * 2])  # two seconds
            await stream.finish()
            async with asyncio.timeout(t(30)):
                said = [m async for m in stream]
    assert said[0]["type"] == "Begin" and said[-1]["type"] == "Termination"
    assert said[-1]["audio_seconds"] == pytest.approx(2.0)
    assert stream.close_code == 1000 and proxy.connections == 2
