"""Fleet-wide upstream requests per minute (``OPENAI_RPM_LIMIT``), shared through Redis.

Fixed one-minute buckets, ``{stt}:rpm:<minute>``, incremented atomically. A
request over the limit waits for the next minute instead of being sent; if
Redis cannot be reached the limiter stands aside (the upstream's own 429s and
the breaker still protect it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from gateway.errors import LedgerUnavailable
from gateway.redis.errors import map_redis_errors

RPM = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return n
"""


class RpmLimiter:
    def __init__(
        self, client: aioredis.Redis, limit: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self._script = client.register_script(RPM)
        self._clock = clock
        self.waited = 0

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            minute = int(now // 60)
            try:
                with map_redis_errors():
                    count = int(await self._script(keys=[f"{{stt}}:rpm:{minute}"]))
            except LedgerUnavailable:
                return  # no shared count: the upstream's own 429s still pace us
            if count <= self.limit:
                return
            self.waited += 1
            await asyncio.sleep((minute + 1) * 60 - now + 0.01)
