"""Many writes in pipelines of a bounded size (a real Redis): all land, none in one huge
pipeline — the heartbeat of hundreds of sessions does not hold the loop in one turn."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from gateway.redis.batches import in_batches
from tests.support.redis_server import RedisServer


async def test_every_write_lands_in_pipelines_of_a_bounded_size(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    sizes: list[int] = []

    def add(pipe: Any, n: int) -> int:
        pipe.hset("batches:h", f"s{n}", n)
        pipe.expire("batches:h", 60)
        if len(pipe.command_stack) == 2:
            sizes.append(0)
        sizes[-1] += 2
        return 2

    try:
        sent = await in_batches(client, range(150), add, batch=64)
        assert sent == 5 and sizes == [64, 64, 64, 64, 44]
        assert await client.hlen("batches:h") == 150
        assert await in_batches(client, [], add) == 0  # nothing to send: no round trip
    finally:
        await client.delete("batches:h")
        await client.aclose()
