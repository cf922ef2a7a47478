"""The ledger's layout in Redis: key names and the Lua scripts that change them.

Every key carries the hash tag ``{stt}`` (one slot: each script is atomic on
Redis Cluster too); see :mod:`gateway.budget.ledger` for what each key holds.
"""

from __future__ import annotations

PREFIX = "{stt}"
DAY_TTL_SECONDS = 36 * 86400
HOLD_TTL_SECONDS = 48 * 3600
RECLAIM_BATCH = 50

# A hold's day keys are fields k1…kN of its hash (N in ``nkeys``): each key is stored and
# read whole, never joined into one string and split again, so no id can smuggle a key in.
# Holds written by releases before this layout kept one newline-joined ``keys`` field
# (their ids were not yet checked); they are still read, for the length of their lease.
_HOLD_KEYS = """
local function hold_keys(hold)
  local keys = {}
  local n = redis.call('HGET', hold, 'nkeys')
  if not n then
    local joined = redis.call('HGET', hold, 'keys')
    if joined then
      for key in string.gmatch(joined, '[^\\n]+') do keys[#keys + 1] = key end
    end
    return keys
  end
  for i = 1, tonumber(n) do keys[i] = redis.call('HGET', hold, 'k' .. i) end
  return keys
end
"""

_RECLAIM = (
    _HOLD_KEYS
    + """
local function reclaim(leases, now, batch)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, batch)
  for _, rid in ipairs(expired) do
    local hold = '{stt}:hold:' .. rid
    local state = redis.call('HGET', hold, 'state')
    if state == 'held' then
      local amount = tonumber(redis.call('HGET', hold, 'amount'))
      for _, key in ipairs(hold_keys(hold)) do
        redis.call('HINCRBY', key, 'reserved', 0 - amount)
      end
      redis.call('HSET', hold, 'state', 'expired')
    end
    redis.call('ZREM', leases, rid)
  end
  return #expired
end
"""
)

# KEYS: leases, hold, schools, day keys… (the school's day key last)
# ARGV: now_ms, rid, amount, lease_deadline_ms, day_ttl, hold_ttl, school_id, model,
#       limits… (one per day key, -1 = no limit)
# KEYS: leases, hold, schools, the school's stored settings, day keys… (school last).
# Returns {ok, refused index, school spent, school reserved, the stored settings or nil}:
# the settings come back with every reservation, so a replica learns of a change made
# elsewhere from the reservation itself, without reading them per window.
RESERVE = (
    _RECLAIM
    + """
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[3])
reclaim(KEYS[1], now, RECLAIM_BATCH_N)
-- A hold released before it was made (its caller gave up while Redis was paused, and
-- released it) stays released: nothing is reserved for it.
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0, 0, 0, false} end
local ndays = #KEYS - 4
for i = 1, ndays do
  local key = KEYS[4 + i]
  local limit = tonumber(ARGV[8 + i])
  if limit >= 0 then
    local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
    local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
    if spent + reserved + amount > limit then
      local school = KEYS[4 + ndays]
      redis.call('HINCRBY', school, 'refused', 1)
      redis.call('EXPIRE', school, ARGV[5])
      return {0, i, tonumber(redis.call('HGET', school, 'spent') or '0'),
              tonumber(redis.call('HGET', school, 'reserved') or '0'),
              redis.call('GET', KEYS[4])}
    end
  end
end
redis.call('HSET', KEYS[2], 'nkeys', ndays, 'amount', amount, 'state', 'held',
           'model', ARGV[8])
for i = 1, ndays do
  local key = KEYS[4 + i]
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('EXPIRE', key, ARGV[5])
  redis.call('HSET', KEYS[2], 'k' .. i, key)
end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[7])
local school = KEYS[4 + ndays]
return {1, 0, tonumber(redis.call('HGET', school, 'spent') or '0'),
        tonumber(redis.call('HGET', school, 'reserved') or '0'),
        redis.call('GET', KEYS[4])}
"""
).replace("RECLAIM_BATCH_N", str(RECLAIM_BATCH))

# charge(leases, hold, rid, actual, audio_ms, model, day_ttl, hold_ttl, amount, day keys):
# charge a reservation once; the day keys (the hold's own) are used only when the hold
# itself has expired. Returns {1 charged now | 0 already settled | -1 unknown, overspend,
# the school's spent, the school's reserved}.
CHARGE_FUNCTION = (
    _HOLD_KEYS
    + """
local function charge(leases, hold, rid, actual, audio_ms, model, day_ttl, hold_ttl, held,
                      given)
  local state = redis.call('HGET', hold, 'state')
  local amount = 0
  local keys = {}
  if not state then
    if #given == 0 then return {-1, 0, 0, 0} end
    keys = given
    amount = tonumber(held)
    state = 'gone'
  else
    if state == 'committed' or state == 'released' then return {0, 0, 0, 0} end
    amount = tonumber(redis.call('HGET', hold, 'amount'))
    keys = hold_keys(hold)
  end
  actual = tonumber(actual)
  local last
  for _, key in ipairs(keys) do
    if state == 'held' then redis.call('HINCRBY', key, 'reserved', 0 - amount) end
    redis.call('HINCRBY', key, 'spent', actual)
    redis.call('HINCRBY', key, 'spent:' .. model, actual)
    redis.call('HINCRBY', key, 'audio_ms', audio_ms)
    redis.call('HINCRBY', key, 'audio_ms:' .. model, audio_ms)
    redis.call('EXPIRE', key, day_ttl)
    last = key
  end
  local over = actual - amount
  if over > 0 then redis.call('HINCRBY', last, 'overspend', over) else over = 0 end
  redis.call('HSET', hold, 'state', 'committed')
  if state == 'gone' then redis.call('EXPIRE', hold, hold_ttl) end
  redis.call('ZREM', leases, rid)
  return {1, over, tonumber(redis.call('HGET', last, 'spent') or '0'),
          tonumber(redis.call('HGET', last, 'reserved') or '0')}
end
"""
)

# KEYS: leases, hold, day keys… (the hold's own, used only when the hold itself has expired)
# ARGV: rid, actual, audio_ms, model, day_ttl, hold_ttl, amount held
COMMIT = (
    CHARGE_FUNCTION
    + """
local given = {}
for i = 3, #KEYS do given[#given + 1] = KEYS[i] end
return charge(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
              ARGV[7], given)
"""
)

# KEYS: leases, hold   ARGV: rid, hold_ttl
# Releasing a hold that does not exist (yet) leaves a tombstone, so a reservation that
# Redis applies later (its caller timed out, then released it) reserves nothing.
RELEASE = (
    _HOLD_KEYS
    + """
local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  redis.call('HSET', KEYS[2], 'state', 'released')
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 0
end
if state ~= 'held' then return 0 end
local amount = tonumber(redis.call('HGET', KEYS[2], 'amount'))
for _, key in ipairs(hold_keys(KEYS[2])) do
  redis.call('HINCRBY', key, 'reserved', 0 - amount)
end
redis.call('HSET', KEYS[2], 'state', 'released')
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
)

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
