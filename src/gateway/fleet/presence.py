"""The open streams of every replica, in Redis, for ``GET /schools/{id}/sessions``.

Each replica writes a small record per open session (no text, ever) into one
hash per school, ``{stt}:sessions:<school>`` (field: session id), when the
session starts and then every :data:`HEARTBEAT_SECONDS`; it deletes the field
when the session ends. A replica that dies stops refreshing its records; a
reader ignores (and removes) records not refreshed for
:data:`STALE_AFTER_SECONDS`, so the list is right behind a load balancer and
after a crash. Without Redis (budgets disabled) the list is this replica's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis

from gateway.errors import LedgerUnavailable
from gateway.fleet.claims import Fleet
from gateway.fleet.kept import KeptSessions
from gateway.observability.logging import get_logger
from gateway.redis.batches import in_batches
from gateway.redis.errors import translated
from gateway.redis.layout import PREFIX

log = get_logger("gateway.presence")

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
#: A school's hash outlives its last refresh by this much, then Redis drops it.
KEY_TTL_SECONDS = 60


class Visible(Protocol):
    """What a session shows of itself (see :meth:`StreamSession.presence`)."""

    school_id: str
    session_id: str

    def presence(self) -> dict[str, Any]: ...


def sessions_key(school_id: str) -> str:
    return f"{PREFIX}:sessions:{school_id}"


def record(session: Visible, now: float) -> str:
    return json.dumps({**session.presence(), "seen_at": round(now, 3)}, separators=(",", ":"))


def fresh(raw: dict[str, str], now: float) -> tuple[list[dict[str, Any]], list[str]]:
    """The records refreshed recently (sorted by start), and the ids of stale ones (pure)."""
    live: list[dict[str, Any]] = []
    stale: list[str] = []
    for session_id, text in raw.items():
        try:
            doc = json.loads(text)
            seen = float(doc.pop("seen_at"))
        except (ValueError, KeyError, TypeError):
            stale.append(session_id)
            continue
        if now - seen > STALE_AFTER_SECONDS:
            stale.append(session_id)
        else:
            live.append(doc)
    live.sort(key=lambda d: (str(d.get("started_at")), str(d.get("session_id"))))
    return live, stale


class Presence:
    """Publishes this replica's sessions and reads a school's, fleet-wide."""

    def __init__(self, redis: aioredis.Redis | None) -> None:
        self._redis = redis
        self._tasks: set[asyncio.Task[None]] = set()

    def announce(self, session: Visible) -> None:
        """Publish a new session now, without making its start wait for Redis."""
        self._spawn(self.publish([session]))

    def forget(self, session: Visible) -> None:
        """Remove an ended session's record (also from a cancelled handler)."""
        self._spawn(self.withdraw(session))

    def spawn(self, work: Any) -> None:
        """Run ``work`` (Redis writes) in the background; awaited briefly at shutdown."""
        self._spawn(work)

    def _spawn(self, work: Any) -> None:
        if self._redis is None:
            work.close()
            return
        task = asyncio.create_task(self._quietly(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, work: Any) -> None:
        try:
            await work
        except LedgerUnavailable as exc:
            # A stale record is dropped by readers after STALE_AFTER_SECONDS anyway.
            log.warning("presence.write_failed", error=exc.error)

    async def close(self) -> None:
        """Let pending writes finish (briefly), then give up on them."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()

    @property
    def fleet_wide(self) -> bool:
        return self._redis is not None

    @translated
    async def publish(self, sessions: Iterable[Visible]) -> None:
        if self._redis is None:
            return
        now = time.time()
        schools: set[str] = set()

        def add(pipe: Any, session: Visible) -> int:
            key = sessions_key(session.school_id)
            pipe.hset(key, session.session_id, record(session, now))
            if key in schools:
                return 1
            schools.add(key)
            pipe.expire(key, KEY_TTL_SECONDS)
            return 2

        await in_batches(self._redis, sessions, add)

    @translated
    async def withdraw(self, session: Visible) -> None:
        if self._redis is not None:
            await self._redis.hdel(sessions_key(session.school_id), session.session_id)

    @translated
    async def school(self, school_id: str, local: Iterable[Visible]) -> list[dict[str, Any]]:
        """The school's open sessions on every replica (this one's only, without Redis)."""
        if self._redis is None:
            docs = [s.presence() for s in local]
            return sorted(docs, key=lambda d: (str(d["started_at"]), str(d["session_id"])))
        key = sessions_key(school_id)
        raw = await self._redis.hgetall(key)
        decoded = {_text(k): _text(v) for k, v in raw.items()}
        live, stale = fresh(decoded, time.time())
        if stale:
            await self._redis.hdel(key, *stale)
        return live

    async def heartbeat(
        self, sessions: Any, fleet: Fleet | None = None, kept: KeptSessions | None = None
    ) -> None:
        """Refresh this replica's records (its fleet claims, and what its connected sessions
        keep for a resume) every few seconds until cancelled."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                live = sessions()
                await self.publish(live)
                if fleet is not None:
                    await fleet.refresh((s.school_id, s.group_id) for s in live)
                if kept is not None:
                    await kept.beat()
                    connected = [s.session_id for s in live if not s.detached]
                    await kept.refresh(connected)
            except LedgerUnavailable as exc:
                log.warning("presence.heartbeat_failed", error=exc.error)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
