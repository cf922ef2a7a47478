"""What a session keeps in Redis for a resume elsewhere, against a real Redis: written as
windows settle, bounded, expiring, handed over, deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.fleet.claims import CLAIM_SECONDS
from gateway.fleet.kept import (
    HANDING_OVER,
    KEPT_IN_REDIS,
    KeptSessions,
    said_key,
    state_key,
)
from gateway.stream.protocol import StreamConfig
from tests.support.redis_server import RedisServer

CONFIG = StreamConfig("pcm_s16le", 16000, 1, "en", "whisper-1", keyterms=("Omar",))


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


def _transcript(seq: int) -> dict[str, object]:
    return {"type": "Transcript", "seq": seq, "start": seq * 1.0, "end": seq + 1.0}


async def test_a_session_is_kept_as_its_windows_settle(redis: aioredis.Redis) -> None:
    kept = KeptSessions(redis, 30, "replica-a")
    await kept.opened("s1", "school", "group", "s1.secret", CONFIG)
    fresh = await kept.load("s1")
    assert fresh is not None and fresh.settled.next_seq == 0 and fresh.owner == "replica-a"
    assert fresh.config == CONFIG and fresh.token_matches("s1.secret")
    assert not fresh.token_matches("s1.other") and fresh.token_hash != "s1.secret"
    for seq in range(KEPT_IN_REDIS + 5):
        counts = {"windows": seq + 1, "ok": seq + 1, "silence": 0, "dropped": 0, "cost_usd": 0.1}
        await kept.settled("s1", [_transcript(seq)], (seq + 1) * 16000, counts)
    stored = await kept.load("s1")
    assert stored is not None
    assert stored.settled.next_seq == KEPT_IN_REDIS + 5
    assert stored.settled.samples == (KEPT_IN_REDIS + 5) * 16000
    assert stored.settled.counts["windows"] == KEPT_IN_REDIS + 5
    assert [t["seq"] for t in stored.settled.kept] == list(range(5, KEPT_IN_REDIS + 5))
    assert 30 < await redis.ttl(state_key("s1")) <= 30 + CLAIM_SECONDS
    await kept.opened("s1", "school", "group", "s1.secret", CONFIG)  # taken over: counts stay
    again = await kept.load("s1")
    assert again is not None and again.settled.next_seq == KEPT_IN_REDIS + 5


async def test_a_drop_gives_it_resume_seconds_and_an_end_deletes_it(
    redis: aioredis.Redis,
) -> None:
    kept = KeptSessions(redis, 30, "replica-a")
    await kept.opened("s2", "school", "group", "s2.secret", CONFIG)
    await kept.settled("s2", [_transcript(0)], 16000, {"windows": 1})
    await kept.refresh(["s2"], detached=True)
    assert 0 < await redis.ttl(state_key("s2")) <= 30
    assert 0 < await redis.ttl(said_key("s2")) <= 30
    await kept.forget("s2")
    assert await kept.load("s2") is None


async def test_a_hand_over_is_said_then_finished(redis: aioredis.Redis) -> None:
    a, b = KeptSessions(redis, 30, "replica-a"), KeptSessions(redis, 30, "replica-b")
    await a.opened("s3", "school", "group", "s3.secret", CONFIG)
    await a.beat()
    assert await b.alive("replica-a") and not await b.alive("replica-c")
    await a.handing_over("s3")
    stored = await b.load("s3")
    assert stored is not None and stored.owner == HANDING_OVER + "replica-a"
    await a.released("s3")
    stored = await b.load("s3")
    assert stored is not None and stored.owner == ""
