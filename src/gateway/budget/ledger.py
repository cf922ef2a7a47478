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
from gateway.observability.logging import get_logger

log = get_logger("gateway.ledger")

PREFIX = "{stt}"
DAY_TTL_SECONDS = 36 * 86400
HOLD_TTL_SECONDS = 48 * 3600
RECLAIM_BATCH = 50

_RECLAIM = """
local function reclaim(leases, now, batch)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, batch)
  for _, rid in ipairs(expired) do
    local hold = '{stt}:hold:' .. rid
    local state = redis.call('HGET', hold, 'state')
    if state == 'held' then
      local amount = tonumber(redis.call('HGET', hold, 'amount'))
      for key in string.gmatch(redis.call('HGET', hold, 'keys'), '[^\\n]+') do
        redis.call('HINCRBY', key, 'reserved', 0 - amount)
      end
      redis.call('HSET', hold, 'state', 'expired')
    end
    redis.call('ZREM', leases, rid)
  end
  return #expired
end
"""

# KEYS: leases, hold, schools, day keys… (the school's day key last)
# ARGV: now_ms, rid, amount, lease_deadline_ms, day_ttl, hold_ttl, school_id, model,
#       limits… (one per day key, -1 = no limit)
RESERVE = (
    _RECLAIM
    + """
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[3])
reclaim(KEYS[1], now, RECLAIM_BATCH_N)
local ndays = #KEYS - 3
for i = 1, ndays do
  local key = KEYS[3 + i]
  local limit = tonumber(ARGV[8 + i])
  if limit >= 0 then
    local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
    local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
    if spent + reserved + amount > limit then
      local school = KEYS[3 + ndays]
      redis.call('HINCRBY', school, 'refused', 1)
      redis.call('EXPIRE', school, ARGV[5])
      return {0, i, tonumber(redis.call('HGET', school, 'spent') or '0'),
              tonumber(redis.call('HGET', school, 'reserved') or '0')}
    end
  end
end
local keys = {}
for i = 1, ndays do
  local key = KEYS[3 + i]
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('EXPIRE', key, ARGV[5])
  keys[#keys + 1] = key
end
redis.call('HSET', KEYS[2], 'keys', table.concat(keys, '\\n'), 'amount', amount,
           'state', 'held', 'model', ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[7])
local school = KEYS[3 + ndays]
return {1, 0, tonumber(redis.call('HGET', school, 'spent') or '0'),
        tonumber(redis.call('HGET', school, 'reserved') or '0')}
"""
).replace("RECLAIM_BATCH_N", str(RECLAIM_BATCH))

# KEYS: leases, hold, day keys… (the hold's own, used only when the hold itself has expired)
# ARGV: rid, actual, audio_ms, model, day_ttl, hold_ttl, amount held
COMMIT = """
local state = redis.call('HGET', KEYS[2], 'state')
local amount = 0
local keys = {}
if not state then
  if #KEYS < 3 then return {-1, 0, 0, 0} end
  for i = 3, #KEYS do keys[#keys + 1] = KEYS[i] end
  amount = tonumber(ARGV[7])
  state = 'gone'
else
  if state == 'committed' or state == 'released' then return {0, 0, 0, 0} end
  amount = tonumber(redis.call('HGET', KEYS[2], 'amount'))
  for key in string.gmatch(redis.call('HGET', KEYS[2], 'keys'), '[^\\n]+') do
    keys[#keys + 1] = key
  end
end
local actual = tonumber(ARGV[2])
local model = ARGV[4]
local last
for _, key in ipairs(keys) do
  if state == 'held' then redis.call('HINCRBY', key, 'reserved', 0 - amount) end
  redis.call('HINCRBY', key, 'spent', actual)
  redis.call('HINCRBY', key, 'spent:' .. model, actual)
  redis.call('HINCRBY', key, 'audio_ms', ARGV[3])
  redis.call('HINCRBY', key, 'audio_ms:' .. model, ARGV[3])
  redis.call('EXPIRE', key, ARGV[5])
  last = key
end
local over = actual - amount
if over > 0 then redis.call('HINCRBY', last, 'overspend', over) else over = 0 end
redis.call('HSET', KEYS[2], 'state', 'committed')
if state == 'gone' then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
redis.call('ZREM', KEYS[1], ARGV[1])
return {1, over, tonumber(redis.call('HGET', last, 'spent') or '0'),
        tonumber(redis.call('HGET', last, 'reserved') or '0')}
"""

# KEYS: leases, hold   ARGV: rid
RELEASE = """
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'held' then return 0 end
local amount = tonumber(redis.call('HGET', KEYS[2], 'amount'))
for key in string.gmatch(redis.call('HGET', KEYS[2], 'keys'), '[^\\n]+') do
  redis.call('HINCRBY', key, 'reserved', 0 - amount)
end
redis.call('HSET', KEYS[2], 'state', 'released')
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: leases   ARGV: now_ms
RECLAIM = _RECLAIM + f"return reclaim(KEYS[1], tonumber(ARGV[1]), {RECLAIM_BATCH})"

# KEYS: alerts hash   ARGV: ttl, payload, thresholds…
FIRE = """
local fired = {}
for i = 3, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[2]) == 1 then fired[#fired + 1] = ARGV[i] end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return fired
"""


def day_key(scope: str, day: str) -> str:
    return f"{PREFIX}:day:{scope}:{day}"


def alerts_key(school_id: str, day: str) -> str:
    return f"{PREFIX}:alerts:{school_id}:{day}"


def override_key(school_id: str) -> str:
    return f"{PREFIX}:override:{school_id}"


LEASES = f"{PREFIX}:leases"
SCHOOLS = f"{PREFIX}:schools"


def hold_key(rid: str) -> str:
    return f"{PREFIX}:hold:{rid}"


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


@dataclass(frozen=True, slots=True)
class CommitResult:
    #: 1 committed now, 0 already settled, -1 unknown reservation.
    status: int
    overspend_micro: int
    school_spent: int
    school_reserved: int


class Ledger:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(RESERVE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._reclaim = client.register_script(RECLAIM)
        self._fire = client.register_script(FIRE)

    async def reserve(
        self,
        *,
        scopes: list[ScopeDay],
        amount_micro: int,
        school_id: str,
        model: str,
        now_ms: int,
        lease_ms: int,
    ) -> ReserveResult:
        """Hold ``amount_micro`` on every scope, or nothing. The school scope must be last."""
        rid = uuid.uuid4().hex
        keys = [LEASES, hold_key(rid), SCHOOLS] + [day_key(s.scope, s.day) for s in scopes]
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
        ok, index, spent, reserved = await self._reserve(keys=keys, args=args)
        if ok:
            return ReserveResult(True, rid, tuple(keys[3:]), None, int(spent), int(reserved))
        return ReserveResult(
            False, None, (), scopes[int(index) - 1].scope, int(spent), int(reserved)
        )

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
        status, over, spent, reserved = await self._commit(
            keys=[LEASES, hold_key(rid), *day_keys],
            args=[
                rid,
                actual_micro,
                audio_ms,
                model,
                DAY_TTL_SECONDS,
                HOLD_TTL_SECONDS,
                amount_micro,
            ],
        )
        return CommitResult(int(status), int(over), int(spent), int(reserved))

    async def release(self, rid: str) -> bool:
        return bool(await self._release(keys=[LEASES, hold_key(rid)], args=[rid]))

    async def reclaim(self, now_ms: int) -> int:
        return int(await self._reclaim(keys=[LEASES], args=[now_ms]))

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

    async def fired_alerts(self, school_id: str, day: str) -> dict[int, dict[str, Any]]:
        raw = await self.client.hgetall(alerts_key(school_id, day))
        return {int(k): json.loads(v) for k, v in raw.items()}

    async def day(self, scope: str, day: str) -> dict[str, int]:
        raw = await self.client.hgetall(day_key(scope, day))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    async def clear_refusals(self, scope: str, day: str) -> dict[str, int]:
        """Forget today's refusals of ``scope`` (its limit changed); its counters after."""
        await self.client.hdel(day_key(scope, day), "refused")
        return await self.day(scope, day)

    async def active_schools(self, since_ms: int) -> list[str]:
        members = await self.client.zrangebyscore(SCHOOLS, since_ms, "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def overrides(self, school_id: str) -> dict[str, Any]:
        """The school's stored settings; unreadable ones (never written by this version) are
        ignored, so the school falls back to its policy and the next PUT replaces them."""
        raw = await self.client.get(override_key(school_id))
        if not raw:
            return {}
        try:
            values = jsonstrict.loads(raw)
        except (jsonstrict.JsonError, UnicodeDecodeError):
            values = None
        if not isinstance(values, dict):
            log.error("budget.overrides_unreadable", school_id=school_id)
            return {}
        return values

    async def clear_overrides(self, school_id: str) -> None:
        await self.client.delete(override_key(school_id))

    async def set_overrides(self, school_id: str, values: dict[str, Any]) -> None:
        await self.client.set(override_key(school_id), json.dumps(values))
