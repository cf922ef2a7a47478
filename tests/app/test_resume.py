"""Resuming a session over real sockets: connections cut by a TCP proxy on loopback (no
close frame), resumed with the token from ``Begin``; nothing lost, nothing billed twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.simulated.whisper import FakeWhisper
from loadtest.proxy import CuttingProxy
from tests.conftest import GatewayFactory
from tests.support.budget import usage
from tests.support.helpers import (
    GatewayServer,
    Stream,
    eventually,
    open_stream,
    t,
    token,
)
from tests.support.resuming import RATE, SPEECH, one_whole_session


@pytest.fixture
async def proxy(gateway: GatewayServer) -> AsyncIterator[CuttingProxy]:
    cutting = await CuttingProxy(("127.0.0.1", gateway.port)).start()
    yield cutting
    await cutting.close()


def _via(proxy: CuttingProxy) -> str:
    return proxy.url("ws") + "/api/v1/listen"


async def _read_until_cut(stream: Stream) -> None:
    """Read what arrives until the connection fails under the client."""
    try:
        while True:
            await stream.next(timeout=10)
    except (AssertionError, aiohttp.ClientError):  # a close or an error frame, not text
        return


def _last_seq(stream: Stream) -> int:
    return max((m["seq"] for m in stream.of_type("Transcript")), default=-1)


async def _until_detached(server: GatewayServer) -> None:
    await eventually(lambda: server.state.metrics.sessions_detached._value.get() == 1)


async def test_a_cut_connection_resumes_with_nothing_lost_or_billed_twice(
    gateway: GatewayServer, proxy: CuttingProxy, fake_whisper: FakeWhisper
) -> None:
    first = await open_stream(gateway, token(), url=_via(proxy))
    begin = first.messages[0]
    assert begin["resumed"] is False and begin["resume_seconds"] == 30
    assert begin["resume_token"].startswith(begin["session_id"] + ".")
    half = len(SPEECH) // 2 // 2 * 2
    await first.send_audio(SPEECH[:half])
    while not first.of_type("Transcript"):
        await first.next()
    assert proxy.cut() == 1  # the network goes away mid-stream: no close frame
    await _read_until_cut(first)
    await first.session.close()
    await _until_detached(gateway)

    query = {"resume": begin["resume_token"], "last_seq": str(_last_seq(first))}
    second = await open_stream(gateway, token(), url=_via(proxy), query=query)
    again = second.messages[0]
    assert again["type"] == "Begin" and again["resumed"] is True
    assert again["session_id"] == begin["session_id"]
    resend_from = round(again["audio_seconds"] * RATE) * 2
    assert 0 < resend_from <= half
    await second.send_audio(SPEECH[resend_from:])
    messages = await second.finish()
    await second.close()

    transcripts, termination = one_whole_session(first, second)
    assert not [m for m in messages if m["type"] == "Error"]
    sent_upstream = [m for m in transcripts if m["status"] == "ok"]
    assert len(fake_whisper.received) == len(sent_upstream)  # each window once
    billed = sum(m.get("billed_seconds", 0) for m in transcripts)
    spent = (await usage(gateway, "s-1"))["spent_usd"]
    assert spent == pytest.approx(termination["cost_usd"]) and spent == pytest.approx(
        billed * 0.0001, abs=1e-6
    )
    assert gateway.state.metrics.session_resumes.labels(outcome="resumed")._value.get() == 1
    await eventually(lambda: gateway.state.metrics.sessions_detached._value.get() == 0)


async def test_a_resume_after_resume_seconds_starts_a_new_session(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(RESUME_SECONDS=1)
    cutting = await CuttingProxy(("127.0.0.1", server.port)).start()
    try:
        first = await open_stream(server, token(), url=_via(cutting))
        begin = first.messages[0]
        await first.send_audio(SPEECH[: RATE * 2])
        cutting.cut()
        await first.session.close()
        await eventually(lambda: len(server.state.registry) == 0, timeout=10)
        query = {"resume": begin["resume_token"], "last_seq": "-1"}
        second = await open_stream(server, token(), query=query)
        fresh = second.messages[0]
        assert fresh["resumed"] is False and fresh["session_id"] != begin["session_id"]
        warning = await second.next()
        assert warning["type"] == "Warning" and warning["code"] == "RESUME_FAILED"
        assert fresh["audio_seconds"] == 0.0
        await second.finish()
        await second.close()
        expired = server.state.metrics.session_resumes.labels(outcome="expired")._value.get()
        assert expired == 1
    finally:
        await cutting.close()


async def test_a_token_of_another_group_is_forbidden(
    gateway: GatewayServer, proxy: CuttingProxy
) -> None:
    first = await open_stream(gateway, token(group="g-1"), url=_via(proxy))
    resume_token = first.messages[0]["resume_token"]
    proxy.cut()
    await first.session.close()
    await _until_detached(gateway)
    query = {"resume": resume_token, "last_seq": "-1"}
    other = await open_stream(gateway, token(group="g-2"), query=query)
    assert other.messages[0]["type"] == "Error" and other.messages[0]["code"] == "FORBIDDEN"
    await other.collect()
    assert other.close_code == 4003
    await other.close()
    metrics = gateway.state.metrics
    assert metrics.session_resumes.labels(outcome="forbidden")._value.get() == 1
    assert len(gateway.state.registry) == 1  # the session still waits for its own client


async def test_a_second_connection_resuming_the_session_replaces_the_first(
    gateway: GatewayServer,
) -> None:
    first = await open_stream(gateway, token())
    begin = first.messages[0]
    await first.send_audio(SPEECH[: len(SPEECH) // 2 // 2 * 2])
    while not first.of_type("Transcript"):
        await first.next()
    query = {"resume": begin["resume_token"], "last_seq": "-1"}
    second = await open_stream(gateway, token(), query=query)
    assert second.messages[0]["resumed"] is True
    await first.collect()
    assert first.of_type("Error")[-1]["code"] == "REPLACED" and first.close_code == 4009
    await first.close()
    at = round(second.messages[0]["audio_seconds"] * RATE) * 2
    await second.send_audio(SPEECH[at:])
    await second.finish()
    await second.close()
    one_whole_session(second)  # replayed from seq 0, then the rest


async def test_without_resume_seconds_a_dropped_session_ends(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(RESUME_SECONDS=0)
    cutting = await CuttingProxy(("127.0.0.1", server.port)).start()
    try:
        first = await open_stream(server, token(), url=_via(cutting))
        assert first.messages[0]["resume_seconds"] == 0
        await first.send_audio(SPEECH[: RATE * 2])
        cutting.cut()
        await first.session.close()
        await eventually(lambda: len(server.state.registry) == 0, timeout=t(10))
    finally:
        await cutting.close()


async def test_a_shutdown_ends_a_detached_session_without_waiting_for_its_client(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(RESUME_SECONDS=600)
    cutting = await CuttingProxy(("127.0.0.1", server.port)).start()
    try:
        first = await open_stream(server, token(), url=_via(cutting))
        await first.send_audio(SPEECH[: RATE * 2])
        cutting.cut()
        await first.session.close()
        await _until_detached(server)
        await server.state.registry.drain(grace=1)  # far less than the 600 s resume wait
        assert len(server.state.registry) == 0
        ended = server.state.metrics.sessions_ended.labels(reason="server_shutdown")
        assert ended._value.get() == 1
        assert server.state.metrics.sessions_detached._value.get() == 0
    finally:
        await cutting.close()


async def test_a_window_is_charged_only_in_the_write_that_settles_the_session_past_it(
    gateway: GatewayServer, fake_whisper: FakeWhisper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Charge and state move together, so a replica dying between them cannot leave a
    charged window for the resuming replica to charge again: here the state write waits
    (a slow Redis), and the charges wait with it."""
    kept = gateway.state.kept
    assert kept is not None
    gate = asyncio.Event()
    settle = kept.settled

    async def held_back(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await settle(*args, **kwargs)

    monkeypatch.setattr(kept, "settled", held_back)
    stream = await open_stream(gateway, token())
    await stream.send_audio(SPEECH)
    billed = gateway.state.metrics.audio_billed.labels(model="whisper-1")
    await eventually(lambda: billed._value.get() >= 3)  # three windows came back billed
    assert (await usage(gateway, "s-1"))["spent_usd"] == 0
    gate.set()
    await stream.finish()
    await stream.close()
    transcripts, termination = one_whole_session(stream)
    spent = (await usage(gateway, "s-1"))["spent_usd"]
    assert spent == pytest.approx(termination["cost_usd"]) and spent > 0
    assert spent == pytest.approx(sum(m["billed_seconds"] for m in transcripts) * 0.0001)
