"""The budget ledger in Redis: atomic multi-scope reserve, idempotent commit/release, leases.

Key layout (every key carries the hash tag ``{stt}``, so each script touches a
single hash slot and Redis Cluster works):

- ``{stt}:day:<scope>:<YYYY-MM-DD>`` — hash per scope and day: ``spent``,
  ``reserved`` (micro-dollars), ``audio_ms``, ``spent:<model>``,
  ``audio_ms:<model>``, ``refused``, ``overspend``. Kept 36 days.
- ``{stt}:hold:<id>`` — one reservation: its day keys, amount, state
  (``held``, ``committed``, ``released``, ``expired``). Kept 48 h.
- ``{stt}:leases`` — sorted set of held reservations by lease deadline (ms);
  every reserve first reclaims (releases) up to 50 expired ones.
- ``{stt}:alerts:<school>:<day>`` — fired thresholds (``HSETNX``: once).
- ``{stt}:schools`` — sorted set of schools by last activity.
- ``{stt}:override:<school>`` — budget settings changed through the API.

Scope names: ``global``, ``model:<m>``, ``district:<id>``, ``school:<id>``.
The day of each scope is chosen by the caller (in the scope's timezone) at
reservation and stored in the hold, so a commit after midnight lands on the
day reserved.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway import jsonstrict
from gateway.errors import JsonError, LedgerNotReplicated
from gateway.observability.logging import get_logger
from gateway.redis.connection import text
from gateway.redis.errors import translated
from gateway.redis.layout import (
    COMMIT,
    DAY_TTL_SECONDS,
    FIRE,
    HOLD_TTL_SECONDS,
    LEASES,
    RECLAIM,
    RELEASE,
    RESERVE,
    SCHOOLS,
    alerts_key,
    day_key,
    hold_key,
    override_key,
)

log = get_logger("gateway.ledger")

#: How long a commit waits for a replica to confirm it (Sentinel deployments).
REPLICA_WAIT_MS = 1000


@dataclass(frozen=True, slots=True)
class ScopeDay:
    """One scope charged by a reservation, on its own day, with its limit (None: unlimited)."""

    scope: str
    day: str
    limit_micro: int | None


@dataclass(frozen=True, slots=True)
class ReserveResult:
    ok: bool
    reservation_id: str | None
    #: The day keys held (school last), for a commit after the hold expired.
    day_keys: tuple[str, ...]
    #: The scope that was full, on refusal.
    refused_scope: str | None
    #: The school's spent and reserved after (or at) this call, micro-dollars.
    school_spent: int
    school_reserved: int
    #: The school's stored settings as stored (None: none), read in the same script.
    settings: str | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    #: 1 committed now, 0 already settled, -1 unknown reservation.
    status: int
    overspend_micro: int
    school_spent: int
    school_reserved: int


def read_overrides(school_id: str, raw: str | bytes | None) -> dict[str, Any]:
    """Stored settings as values; unreadable ones (never written by this version) are
    ignored, so the school falls back to its policy and the next PUT replaces them."""
    if not raw:
        return {}
    try:
        values = jsonstrict.loads(raw)
    except (JsonError, UnicodeDecodeError):
        values = None
    if not isinstance(values, dict):
        log.error("budget.overrides_unreadable", school_id=school_id)
        return {}
    return values


class Ledger:
    def __init__(self, client: aioredis.Redis, *, replicas: int = 0) -> None:
        """``replicas``: how many replicas must have a charge before it counts as taken
        (Sentinel: 1, so a failover cannot lose an acknowledged charge)."""
        self.client = client
        self.replicas = replicas
        self._reserve = client.register_script(RESERVE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._reclaim = client.register_script(RECLAIM)
        self._fire = client.register_script(FIRE)

    @translated
    async def reserve(
        self,
        *,
        scopes: list[ScopeDay],
        amount_micro: int,
        school_id: str,
        model: str,
        now_ms: int,
        lease_ms: int,
        rid: str | None = None,
    ) -> ReserveResult:
        """Hold ``amount_micro`` on every scope, or nothing. The school scope must be last.
        ``rid``: the hold's id, chosen by the caller so that it can release a hold whose
        call failed (Redis may still apply it)."""
        rid = rid or uuid.uuid4().hex
        keys = [LEASES, hold_key(rid), SCHOOLS, override_key(school_id)]
        keys += [day_key(s.scope, s.day) for s in scopes]
        args: list[Any] = [
            now_ms,
            rid,
            amount_micro,
            now_ms + lease_ms,
            DAY_TTL_SECONDS,
            HOLD_TTL_SECONDS,
            school_id,
            model,
        ]
        args += [-1 if s.limit_micro is None else s.limit_micro for s in scopes]
        ok, index, spent, reserved, *stored = await self._reserve(keys=keys, args=args)
        settings = text(stored[0]) if stored else None
        if ok:
            days = tuple(keys[4:])
            return ReserveResult(True, rid, days, None, int(spent), int(reserved), settings)
        refused = scopes[int(index) - 1].scope if int(index) > 0 else "released"
        return ReserveResult(False, None, (), refused, int(spent), int(reserved), settings)

    @translated
    async def commit(
        self,
        rid: str,
        *,
        actual_micro: int,
        audio_ms: int,
        model: str,
        day_keys: tuple[str, ...] = (),
        amount_micro: int = 0,
    ) -> CommitResult:
        """Charge ``actual_micro`` once. ``day_keys`` (the reservation's, school last) are
        charged directly if the hold itself has expired (a journal replayed days later)."""
        keys = [LEASES, hold_key(rid), *day_keys]
        args: list[Any] = [
            rid,
            actual_micro,
            audio_ms,
            model,
            DAY_TTL_SECONDS,
            HOLD_TTL_SECONDS,
            amount_micro,
        ]
        if not self.replicas:
            status, over, spent, reserved = await self._commit(keys=keys, args=args)
            return CommitResult(int(status), int(over), int(spent), int(reserved))
        # Durable only once a replica has it: WAIT on the connection that wrote it.
        async with self.client.pipeline(transaction=False) as pipe:
            await self._commit(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self.replicas, REPLICA_WAIT_MS)
            (status, over, spent, reserved), acked = await pipe.execute()
        if int(acked) < self.replicas and await self._replicas_connected():
            raise LedgerNotReplicated(f"{acked} of {self.replicas} replicas have the charge")
        return CommitResult(int(status), int(over), int(spent), int(reserved))

    async def _replicas_connected(self) -> bool:
        """Whether the primary has a replica to wait for (after a failover, until the old
        primary comes back as a replica, it has none: the charge is as safe as it can be)."""
        info = await self.client.info("replication")
        return int(info.get("connected_slaves", 0)) > 0

    @translated
    async def release(self, rid: str) -> bool:
        return bool(await self._release(keys=[LEASES, hold_key(rid)], args=[rid, HOLD_TTL_SECONDS]))

    @translated
    async def reclaim(self, now_ms: int) -> int:
        return int(await self._reclaim(keys=[LEASES], args=[now_ms]))

    @translated
    async def fire_alerts(
        self, school_id: str, day: str, thresholds: list[int], payload: dict[str, Any]
    ) -> list[int]:
        """Mark thresholds fired for (school, day); return those fired by this call only."""
        if not thresholds:
            return []
        fired = await self._fire(
            keys=[alerts_key(school_id, day)],
            args=[DAY_TTL_SECONDS, json.dumps(payload), *thresholds],
        )
        return [int(t) for t in fired]

    @translated
    async def fired_alerts(self, school_id: str, day: str) -> dict[int, dict[str, Any]]:
        raw = await self.client.hgetall(alerts_key(school_id, day))
        return {int(k): json.loads(v) for k, v in raw.items()}

    @translated
    async def day(self, scope: str, day: str) -> dict[str, int]:
        raw = await self.client.hgetall(day_key(scope, day))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    @translated
    async def clear_refusals(self, scope: str, day: str) -> dict[str, int]:
        """Forget today's refusals of ``scope`` (its limit changed); its counters after."""
        await self.client.hdel(day_key(scope, day), "refused")
        return await self.day(scope, day)

    @translated
    async def active_schools(self, since_ms: int) -> list[str]:
        members = await self.client.zrangebyscore(SCHOOLS, since_ms, "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    @translated
    async def overrides(self, school_id: str) -> dict[str, Any]:
        """The school's stored settings (see :func:`read_overrides`)."""
        return read_overrides(school_id, await self.stored_settings(school_id))

    @translated
    async def stored_settings(self, school_id: str) -> str | None:
        """The school's stored settings as stored (None: none)."""
        return text(await self.client.get(override_key(school_id)))

    @translated
    async def clear_overrides(self, school_id: str) -> None:
        await self.client.delete(override_key(school_id))

    @translated
    async def set_overrides(self, school_id: str, values: dict[str, Any]) -> None:
        await self.client.set(override_key(school_id), json.dumps(values))
