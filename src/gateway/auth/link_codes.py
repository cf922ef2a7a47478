"""Single-use codes for page links: ``/classroom#code=…`` instead of the token itself.

A link a teacher shares or opens lands in browser history; on a shared
classroom device a token there is a token for anyone. A code is redeemed
once (``POST /api/v1/tokens/redeem``) within ``LINK_CODE_TTL_SECONDS`` and is
worthless afterwards. Codes live in Redis (any replica redeems them), under
the SHA-256 of the code so that Redis never holds a usable code; without
Redis (or while it is unreachable) in this process's memory, bounded.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.errors import LedgerUnavailable
from gateway.redis.errors import map_redis_errors
from gateway.redis.layout import PREFIX

#: Codes kept in memory at most (oldest dropped first).
MEMORY_CODES = 10_000


@dataclass(frozen=True, slots=True)
class Redeemed:
    token: str
    expires_at: str


def _key(code: str) -> str:
    return f"{PREFIX}:link:" + hashlib.sha256(code.encode()).hexdigest()


class LinkCodes:
    def __init__(
        self,
        redis: aioredis.Redis | None,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def issue(self, token: str, expires_at: str) -> str:
        """A new code for ``token``."""
        code = secrets.token_urlsafe(24)
        value = json.dumps({"token": token, "expires_at": expires_at})
        client = self._redis
        if client is not None:
            try:
                with map_redis_errors():
                    await client.set(_key(code), value, ex=self.ttl_seconds)
                return code
            except LedgerUnavailable:
                pass
        self._remember(_key(code), value)
        return code

    async def redeem(self, code: str) -> Redeemed | None:
        """The token of ``code``, once; None for a used, expired or unknown code."""
        if not code or len(code) > 128:
            return None
        key = _key(code)
        value = self._take(key)
        client = self._redis
        if value is None and client is not None:
            try:
                with map_redis_errors():
                    raw = await client.getdel(key)
            except LedgerUnavailable:
                raw = None
            value = raw.decode() if isinstance(raw, bytes) else raw
        if value is None:
            return None
        stored = json.loads(value)
        return Redeemed(str(stored["token"]), str(stored["expires_at"]))

    def _remember(self, key: str, value: str) -> None:
        self._prune()
        self._memory[key] = (self._clock() + self.ttl_seconds, value)
        while len(self._memory) > MEMORY_CODES:
            self._memory.popitem(last=False)

    def _take(self, key: str) -> str | None:
        self._prune()
        entry = self._memory.pop(key, None)
        return entry[1] if entry is not None else None

    def _prune(self) -> None:
        now = self._clock()
        while self._memory:
            key, (deadline, _value) = next(iter(self._memory.items()))
            if deadline > now:
                break
            del self._memory[key]
