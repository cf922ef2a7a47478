"""Replicas that act as one gateway: one stream per group and a school's cap, fleet-wide.

Two gateways share one real Redis (two replicas behind a load balancer, as far as the
fleet can tell): a group moving from one to the other replaces its old session there,
and a school's ``max_concurrent_streams`` holds across both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from gateway.fleet.claims import CLAIM_SECONDS, Fleet
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import (
    GatewayServer,
    connect,
    eventually,
    open_stream,
    token,
    write_policy,
)
from tests.support.redis_server import RedisServer


async def _replicas(
    make_gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path, cap: int | None
) -> tuple[GatewayServer, GatewayServer]:
    school: dict[str, object] = {"district_id": "d-1", "daily_limit_usd": 2.5}
    if cap is not None:
        school["max_concurrent_streams"] = cap
    policy = write_policy(tmp_path / "policy.json", schools={"s-1": school})
    env = {"REDIS_URL": redis_server.url, "BUDGET_POLICY_PATH": policy}
    return await make_gateway(**env), await make_gateway(**env)


async def test_a_group_moving_to_another_replica_replaces_its_old_session(
    redis_server: RedisServer, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    a, b = await _replicas(make_gateway, redis_server, tmp_path, cap=None)
    old = await open_stream(a, token(group="g-1"))
    await old.send_audio(tone(500, 1.5))
    new = await connect(b, token(group="g-1"))
    assert (await new.next())["type"] == "Begin"
    messages = await old.collect()
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "REPLACED"
    assert old.close_code == 4009
    assert [m["status"] for m in messages if m["type"] == "Transcript"] == ["ok", "ok"]
    await eventually(lambda: a.state.metrics.stream_restarts._value.get() == 1)
    await new.finish()
    assert new.close_code == 1000
    await old.close()
    await new.close()


async def test_a_schools_cap_holds_across_replicas(
    redis_server: RedisServer, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Cap 3: three groups stream over both replicas; a fourth is refused on either (1013,
    retry later); a group reconnecting is never refused; a freed place is taken again."""
    a, b = await _replicas(make_gateway, redis_server, tmp_path, cap=3)
    streams = []
    for server, group in ((a, "g-1"), (b, "g-2"), (a, "g-3")):
        stream = await connect(server, token(group=group))
        assert (await stream.next())["type"] == "Begin"
        streams.append(stream)
    for server in (a, b):
        refused = await connect(server, token(group="g-4"))
        error = await refused.next()
        assert error["code"] == "OVERLOADED" and error["retry_after"] > 0
        assert "3 concurrent streams" in error["message"]
        await refused.collect()
        assert refused.close_code == 1013
        await refused.close()
    again = await connect(b, token(group="g-1"))  # g-1 moves from a to b: not a new group
    begin = await again.next()
    assert begin["type"] == "Begin", begin
    await streams[0].collect()
    assert streams[0].close_code == 4009
    await streams[1].send_json({"type": "CloseStream"})
    await streams[1].collect()
    for _ in range(50):  # the place is given back as the session ends, just after the close
        admitted = await connect(a, token(group="g-4"))
        if (await admitted.next())["type"] == "Begin":
            break
        await admitted.close()
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the place g-2 left was not given back")
    for stream in (*streams, again, admitted):
        await stream.close()


async def test_claims_of_a_replica_that_died_lapse(redis_server: RedisServer) -> None:
    """A replica that stops refreshing (it died) holds its groups only until the claims
    lapse; one that refreshes keeps them."""
    now = [1000.0]
    client = aioredis.Redis.from_url(redis_server.url)
    dead = Fleet(client, lambda _: None, clock=lambda: now[0])
    alive = Fleet(client, lambda _: None, clock=lambda: now[0])
    assert (await dead.claim("s-9", "g-1", "a", cap=2)).ok
    assert (await alive.claim("s-9", "g-2", "b", cap=2)).ok
    refused = await alive.claim("s-9", "g-3", "c", cap=2)
    assert not refused.ok and refused.streaming == 2
    now[0] += CLAIM_SECONDS - 1
    await alive.refresh([("s-9", "g-2")])
    now[0] += 2  # dead's claim lapsed; alive's was refreshed
    assert (await alive.claim("s-9", "g-3", "c", cap=2)).ok
    assert not (await alive.claim("s-9", "g-4", "d", cap=2)).ok
    await alive.release("s-9", "g-3", "wrong-session")  # only the owner gives a group up
    assert not (await alive.claim("s-9", "g-4", "d", cap=2)).ok
    await alive.release("s-9", "g-3", "c")
    assert (await alive.claim("s-9", "g-4", "d", cap=2)).ok
    await client.aclose()


async def test_budget_notices_reach_the_schools_sessions_on_every_replica(
    redis_server: RedisServer, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Windows billed on replica A cross the school's thresholds; a classroom of the same
    school streaming on replica B hears every one of them."""
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"s-1": {"district_id": "d-1", "daily_limit_usd": 0.0003}},
    )
    env = {"REDIS_URL": redis_server.url, "BUDGET_POLICY_PATH": policy}
    a, b = await make_gateway(**env), await make_gateway(**env)
    listener = await connect(b, token(group="g-quiet"))
    assert (await listener.next())["type"] == "Begin"
    speaker = await open_stream(a, token(group="g-loud"))
    await speaker.send_audio(tone(500, 4.0))
    await speaker.finish()
    heard: list[int] = []

    async def hear() -> None:
        while sorted(heard) != [50, 80, 100]:
            message = await listener.next()
            if message["type"] == "Budget":
                heard.append(message["threshold"])

    await asyncio.wait_for(hear(), 20)
    await listener.close()
    await speaker.close()
