"""One stream per group and a school's cap on streams, across every replica, in Redis.

Each school has a sorted set ``{stt}:streams:<school>`` of its groups streaming
now (score: when the claim lapses unless refreshed) and a hash
``{stt}:owners:<school>`` naming, per group, the replica and session that own
it. A new stream *claims* its group in one script: a group already streaming
is taken over (the old owner is told on ``{stt}:replaced`` and closes its
session with 4009, wherever it runs — or, when the new owner resumes that very
session, hands it over); a new group is refused when the school
already has ``max_concurrent_streams`` groups streaming. Budget notices go out on
``{stt}:budget-notices`` to the school's sessions on every replica. Replicas refresh their
claims with the presence heartbeat; a replica that dies stops refreshing and
its claims lapse after :data:`CLAIM_SECONDS`.

Without Redis (budgets disabled) there is one replica and the local registry
does both jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.errors import LedgerUnavailable
from gateway.observability.logging import get_logger
from gateway.redis.batches import in_batches
from gateway.redis.connection import text
from gateway.redis.errors import map_redis_errors, translated
from gateway.redis.layout import PREFIX

log = get_logger("gateway.fleet")

#: A claim not refreshed for this long lapses (a replica died without ending its streams).
CLAIM_SECONDS = 20.0
CHANNEL = f"{PREFIX}:replaced"
#: Budget notices for a school's sessions on every replica (JSON: school_id and the notice).
NOTICES = f"{PREFIX}:budget-notices"
#: A lost subscription is retried after 1 s, doubling to 10 s while Redis stays away.
LISTEN_RETRY_SECONDS = 1.0
LISTEN_RETRY_MAX_SECONDS = 10.0

# KEYS: streams, owners. ARGV: now ms, lapse ms, group, owner, cap (-1: none).
# Returns {1, previous owner or false} when claimed, {0, streams now} when at the cap.
CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local cap = tonumber(ARGV[5])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and cap >= 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= cap then return {0, n} end
end
local previous = redis.call('HGET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.floor(ARGV[2] - ARGV[1]) + 60000)
redis.call('PEXPIRE', KEYS[2], math.floor(ARGV[2] - ARGV[1]) + 60000)
return {1, previous}
"""

# KEYS: streams, owners. ARGV: group, owner. Only the owner gives a group up.
RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def streams_key(school_id: str) -> str:
    return f"{PREFIX}:streams:{school_id}"


def owners_key(school_id: str) -> str:
    return f"{PREFIX}:owners:{school_id}"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a group: taken (and from whom), or refused at the cap."""

    ok: bool
    previous: str | None = None
    streaming: int = 0


class Fleet:
    """This replica's view of the fleet's streams."""

    def __init__(
        self,
        redis: aioredis.Redis,
        on_replaced: Callable[[str, bool], None],
        clock: Callable[[], float] = time.time,
        on_notice: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.redis = self._redis = redis
        self._on_replaced = on_replaced
        self._on_notice = on_notice
        self._clock = clock
        self.replica = uuid.uuid4().hex[:12]
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    def owner(self, session_id: str) -> str:
        return f"{self.replica}:{session_id}"

    @translated
    async def claim(self, school_id: str, group_id: str, session_id: str, cap: int | None) -> Claim:
        """Claim ``group_id`` for a new session; tell the replica that owned it, if another."""
        now = self._clock()
        result = await self._claim(
            keys=[streams_key(school_id), owners_key(school_id)],
            args=[
                int(now * 1000),
                int((now + CLAIM_SECONDS) * 1000),
                group_id,
                self.owner(session_id),
                -1 if cap is None else cap,
            ],
        )
        if not int(result[0]):
            return Claim(False, streaming=int(result[1]))
        previous = text(result[1])
        if previous and not previous.startswith(f"{self.replica}:"):
            await self._redis.publish(CHANNEL, f"{previous}>{session_id}")
        return Claim(True, previous)

    async def release(self, school_id: str, group_id: str, session_id: str) -> None:
        """Give the group back (a claim not given back lapses by itself)."""
        with contextlib.suppress(LedgerUnavailable), map_redis_errors():
            await self._release(
                keys=[streams_key(school_id), owners_key(school_id)],
                args=[group_id, self.owner(session_id)],
            )

    @translated
    async def refresh(self, claims: Iterable[tuple[str, str]]) -> None:
        """Keep this replica's claims (school, group) from lapsing."""
        lapse = int((self._clock() + CLAIM_SECONDS) * 1000)

        def add(pipe: Any, claim: tuple[str, str]) -> int:
            pipe.zadd(streams_key(claim[0]), {claim[1]: lapse}, xx=True)
            return 1

        await in_batches(self._redis, claims, add)

    @translated
    async def notify(self, notice: dict[str, Any]) -> None:
        """Hand a budget notice to the school's sessions on every replica (this one too)."""
        await self._redis.publish(NOTICES, json.dumps(notice, separators=(",", ":")))

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Sessions of this replica taken over on another: end them (4009); budget notices:
        to this replica's sessions of the school."""
        mine = f"{self.replica}:"
        failing: str | None = None  # the error of the current outage, logged once
        delay = LISTEN_RETRY_SECONDS
        while not self._closing:
            try:
                initialize = getattr(self._redis, "initialize", None)
                if initialize is not None:  # a Cluster client learns its slots first
                    await initialize()
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL, NOTICES)
                    if failing is not None:
                        log.info("fleet.listen_restored")
                        failing, delay = None, LISTEN_RETRY_SECONDS
                    while not self._closing:
                        # A short wait per read: the client's socket timeout would end a
                        # quiet subscription otherwise.
                        message = await pubsub.get_message(timeout=1.0)
                        if message:
                            self._received(mine, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a background loop: log, wait, subscribe again
                if self._closing:
                    return
                error = type(exc).__name__
                if error != failing:  # once per state change, not once per attempt
                    log.warning("fleet.listen_failed", error=error, retry_seconds=delay)
                    failing = error
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX_SECONDS)

    def _received(self, mine: str, message: dict[str, Any]) -> None:
        data = text(message.get("data"))
        if not data:
            return
        if text(message.get("channel")) == NOTICES:
            if self._on_notice is not None:
                with contextlib.suppress(ValueError, TypeError):
                    notice = json.loads(data)
                    if isinstance(notice, dict):
                        self._on_notice(notice)
        elif data.startswith(mine):  # "<replica>:<session>><the new session>"
            session_id, _, newer = data[len(mine) :].partition(">")
            self._on_replaced(session_id, newer == session_id)

    async def close(self) -> None:
        """Stop listening (the client may turn a cancellation into its own error: the
        flag ends the loop whatever it raises)."""
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, 5.0)
