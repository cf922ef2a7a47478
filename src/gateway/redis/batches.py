"""Many writes of one kind in pipelines of a bounded size, one after another.

Packing a pipeline's commands and parsing its replies is the client's own work, done in
one turn of the event loop: a heartbeat refreshing 400 sessions' records in three
pipelines held the loop ~70 ms every 5 s — a lag spike the admission signal saw as
saturation. In batches of :data:`BATCH` commands, each turn stays short and the streams'
frames are read in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")

#: Commands a pipeline carries at most.
BATCH = 64


async def in_batches(
    redis: aioredis.Redis,
    items: Iterable[T],
    add: Callable[[Any, T], int],
    batch: int = BATCH,
) -> int:
    """Queue ``add(pipe, item)`` for every item (it returns how many commands it queued)
    in pipelines of about ``batch`` commands, each sent and answered before the next is
    packed. How many pipelines were sent."""
    rest = iter(items)
    sent = 0
    while True:
        async with redis.pipeline(transaction=False) as pipe:
            queued = 0
            for item in rest:
                queued += add(pipe, item)
                if queued >= batch:
                    break
            if not queued:
                return sent
            await pipe.execute()
            sent += 1
