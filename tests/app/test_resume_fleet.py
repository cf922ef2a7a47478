"""Resuming on any replica: two gateways on one real Redis; a connection cut on A (a TCP
proxy, no close frame) resumes on B from what A kept in Redis — after A hands the session
over, or after A stopped. Every window once, tiling the stream, billed once."""

from __future__ import annotations

from typing import Any

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
    token,
)
from tests.support.redis_server import RedisServer
from tests.support.resuming import RATE, SPEECH, one_whole_session


async def _replicas(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> tuple[GatewayServer, GatewayServer]:
    env = {"REDIS_URL": redis_server.url}
    return await make_gateway(**env), await make_gateway(**env)


async def _cut_midway(a: GatewayServer) -> tuple[Stream, dict[str, Any], CuttingProxy]:
    """A stream on A through a proxy, cut once its first Transcript arrived."""
    proxy = await CuttingProxy(("127.0.0.1", a.port)).start()
    first = await open_stream(a, token(), url=proxy.url("ws") + "/api/v1/listen")
    await first.send_audio(SPEECH[: len(SPEECH) // 2 // 2 * 2])
    while not first.of_type("Transcript"):
        await first.next()
    proxy.cut()
    await first.session.close()
    await eventually(lambda: a.state.metrics.sessions_detached._value.get() == 1)
    return first, first.messages[0], proxy


def _last_seq(stream: Stream) -> int:
    return max((m["seq"] for m in stream.of_type("Transcript")), default=-1)


async def _resume_on(
    b: GatewayServer, first: Stream, begin: dict[str, Any]
) -> tuple[Stream, list[dict[str, Any]]]:
    query = {"resume": begin["resume_token"], "last_seq": str(_last_seq(first))}
    second = await open_stream(b, token(), query=query)
    again = second.messages[0]
    assert again["type"] == "Begin" and again["resumed"] is True, again
    assert again["session_id"] == begin["session_id"]
    await second.send_audio(SPEECH[round(again["audio_seconds"] * RATE) * 2 :])
    messages = await second.finish()
    await second.close()
    return second, messages


async def _all_accounted_for(
    first: Stream, second: Stream, b: GatewayServer, fake_whisper: FakeWhisper
) -> None:
    transcripts, termination = one_whole_session(first, second)
    ok = [m for m in transcripts if m["status"] == "ok"]
    assert len(fake_whisper.received) == len(ok)  # each window went upstream once
    spent = (await usage(b, "s-1"))["spent_usd"]
    assert spent == pytest.approx(termination["cost_usd"])
    assert spent == pytest.approx(sum(m["billed_seconds"] for m in transcripts) * 0.0001)


async def test_cut_on_a_resumed_on_b(
    make_gateway: GatewayFactory, redis_server: RedisServer, fake_whisper: FakeWhisper
) -> None:
    a, b = await _replicas(make_gateway, redis_server)
    first, begin, proxy = await _cut_midway(a)
    second, _ = await _resume_on(b, first, begin)
    await _all_accounted_for(first, second, b, fake_whisper)
    await eventually(lambda: len(a.state.registry) == 0)
    assert a.state.metrics.sessions_ended.labels(reason="replaced")._value.get() == 1
    assert b.state.metrics.session_resumes.labels(outcome="resumed")._value.get() == 1
    audit = b.state.audit.path.read_text()
    assert '"session.resumed"' in audit and begin["resume_token"] not in audit
    await proxy.close()


async def test_a_connection_still_open_on_a_is_replaced_by_a_resume_on_b(
    make_gateway: GatewayFactory, redis_server: RedisServer, fake_whisper: FakeWhisper
) -> None:
    a, b = await _replicas(make_gateway, redis_server)
    first = await open_stream(a, token())
    await first.send_audio(SPEECH[: len(SPEECH) // 2 // 2 * 2])
    while not first.of_type("Transcript"):
        await first.next()
    second, _ = await _resume_on(b, first, first.messages[0])
    await first.collect()
    assert first.of_type("Error")[-1]["code"] == "REPLACED" and first.close_code == 4009
    await first.close()
    await _all_accounted_for(first, second, b, fake_whisper)


async def test_a_dropped_session_outlives_its_replica_stopping(
    make_gateway: GatewayFactory, redis_server: RedisServer, fake_whisper: FakeWhisper
) -> None:
    a, b = await _replicas(make_gateway, redis_server)
    first, begin, proxy = await _cut_midway(a)
    await a.stop()  # a rolling restart: the session's client is away
    second, _ = await _resume_on(b, first, begin)
    await _all_accounted_for(first, second, b, fake_whisper)
    await proxy.close()


async def test_the_heartbeat_keeps_a_detached_session_to_resume_seconds(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    """Connected sessions' state is refreshed with the heartbeat; a detached one keeps the
    RESUME_SECONDS it was given at the drop."""
    import asyncio

    import redis.asyncio as aioredis

    from gateway.fleet.kept import state_key
    from gateway.fleet.presence import HEARTBEAT_SECONDS

    a, _ = await _replicas(make_gateway, redis_server)
    _, begin, proxy = await _cut_midway(a)
    await asyncio.sleep(HEARTBEAT_SECONDS + 1)  # a heartbeat passed while it was away
    client = aioredis.from_url(redis_server.url)
    try:
        assert 0 < await client.ttl(state_key(begin["session_id"])) <= 30
    finally:
        await client.aclose()
        await proxy.close()
