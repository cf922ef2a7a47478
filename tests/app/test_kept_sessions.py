"""What a session keeps in Redis for a resume elsewhere, against a real Redis: written as
windows settle, bounded, expiring, handed over, deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.budget.ledger import Ledger, ScopeDay
from gateway.budget.policy import SchoolBudget
from gateway.budget.settlement import Charge, Hold
from gateway.fleet.claims import CLAIM_SECONDS
from gateway.fleet.kept import (
    HANDING_OVER,
    KEPT_IN_REDIS,
    KeptSessions,
    said_key,
    state_key,
)
from gateway.redis.layout import day_key
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


def _charge(rid: str, actual: int) -> Charge:
    school = SchoolBudget("school", 10**9, "UTC", (), None, None)
    hold = Hold(rid, school, "2026-12-03", "whisper-1", 1000, (day_key("school:school", "d"),))
    return Charge(hold, 2.0, actual)


async def _hold(redis: aioredis.Redis, rid: str, *, lease_ms: int = 60_000) -> None:
    ledger = Ledger(redis)
    scopes = [ScopeDay("school:school", "d", None)]
    reserved = await ledger.reserve(
        scopes=scopes,
        amount_micro=1000,
        school_id="school",
        model="whisper-1",
        now_ms=1_000,
        lease_ms=lease_ms,
        rid=rid,
    )
    assert reserved.ok


async def test_a_window_is_charged_in_the_write_that_settles_it_and_only_once(
    redis: aioredis.Redis,
) -> None:
    """The state moves past a window and its hold is charged in one script: no replica can
    die between the two, so a resume elsewhere never sends (and charges) it again."""
    kept = KeptSessions(redis, 30, "replica-a")
    await kept.opened("s5", "school", "group", "s5.secret", CONFIG)
    await _hold(redis, "w0")
    await _hold(redis, "w1")
    taken = await kept.settled(
        "s5", [_transcript(0), _transcript(1)], 32000, {}, charges=(_charge("w0", 900),)
    )
    assert [(c.hold.reservation_id, r.status) for c, r in taken] == [("w0", 1)]
    day = await Ledger(redis).day("school:school", "d")
    assert day["spent"] == 900 and day["reserved"] == 1000  # w1 is still held
    assert day["audio_ms"] == 2000 and day["spent:whisper-1"] == 900
    again = await kept.settled("s5", [_transcript(1)], 32000, {}, charges=(_charge("w0", 900),))
    assert [r.status for _, r in again] == [0]  # a second write charges nothing
    # A hold its replica never settled (it died first) is given back when its lease ends.
    assert await Ledger(redis).reclaim(now_ms=10**12) >= 1
    day = await Ledger(redis).day("school:school", "d")
    assert day["spent"] == 900 and day["reserved"] == 0
    stored = await kept.load("s5")
    assert stored is not None and stored.settled.next_seq == 2
