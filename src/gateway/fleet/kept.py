"""What a session keeps in Redis so that any replica can resume it, even after the one that
held it died.

Per session, written as its windows settle (one pipeline per batch of
Transcripts, every key in the ``{stt}`` slot):

- ``{stt}:session:<id>`` (hash): ``school``, ``group``, ``token`` (the resume
  token's SHA-256, never the token), ``config`` (the stream's settings, JSON),
  ``next_seq``, ``samples`` (the audio up to the end of the last settled
  window), ``counts`` (JSON), ``owner`` (the replica running it; empty once it
  handed the session over);
- ``{stt}:session:<id>:said`` (list): the last :data:`KEPT_IN_REDIS`
  Transcripts, JSON, for the replay (a client that resumes lacks only those
  settled since shortly before its drop: at most ``RESUME_SECONDS`` +
  ``MAX_PENDING_AUDIO_SECONDS`` of windows).

Both live ``RESUME_SECONDS`` + :data:`CLAIM_SECONDS` while the session runs
(refreshed with the presence heartbeat) and ``RESUME_SECONDS`` after a drop;
a session that ends deletes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.budget.ledger import REPLICA_WAIT_MS, CommitResult
from gateway.budget.settlement import Charge
from gateway.errors import LedgerNotReplicated
from gateway.fleet.claims import CLAIM_SECONDS
from gateway.redis.batches import in_batches
from gateway.redis.connection import text
from gateway.redis.errors import translated
from gateway.redis.layout import (
    CHARGE_FUNCTION,
    DAY_TTL_SECONDS,
    HOLD_TTL_SECONDS,
    LEASES,
    PREFIX,
    hold_key,
)
from gateway.stream.protocol import StreamConfig
from gateway.stream.resume import Settled

# KEYS: state, said, leases, a hold per charge. ARGV: next seq, samples, counts, ttl, kept,
# day ttl, hold ttl, n, n Transcripts (JSON), then rid, actual, audio ms, model, amount
# held per charge. The session's state moves past its windows and their holds are charged
# in one step: a replica that dies before it leaves them held (released when their lease
# runs out; the client sends that audio again), one that dies after has charged them.
SETTLE = (
    CHARGE_FUNCTION
    + """
redis.call('HSET', KEYS[1], 'next_seq', ARGV[1], 'samples', ARGV[2], 'counts', ARGV[3])
local n = tonumber(ARGV[8])
redis.call('RPUSH', KEYS[2], unpack(ARGV, 9, 8 + n))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local results = {}
for i = 4, #KEYS do
  local at = 9 + n + (i - 4) * 5
  results[#results + 1] = charge(KEYS[3], KEYS[i], ARGV[at], ARGV[at + 1], ARGV[at + 2],
                                 ARGV[at + 3], ARGV[6], ARGV[7], ARGV[at + 4], {})
end
return results
"""
)
#: ``owner`` while the replica running a session finishes it for another.
HANDING_OVER = "~"
#: Transcripts kept in Redis per session (the replica running it keeps more in memory).
KEPT_IN_REDIS = 32


def state_key(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def said_key(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}:said"


def replica_key(replica: str) -> str:
    return f"{PREFIX}:replica:{replica}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def config_json(config: StreamConfig) -> str:
    return _compact(
        {
            "encoding": config.encoding,
            "sample_rate": config.sample_rate,
            "channels": config.channels,
            "language": config.language,
            "model": config.model,
            "keyterms": list(config.keyterms),
            "interim_results": config.interim_results,
        }
    )


def config_from(raw: str) -> StreamConfig:
    doc = json.loads(raw)
    return StreamConfig(
        doc["encoding"],
        int(doc["sample_rate"]),
        int(doc["channels"]),
        doc["language"],
        doc["model"],
        keyterms=tuple(doc["keyterms"]),
        interim_results=bool(doc["interim_results"]),
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """A session as Redis has it."""

    school_id: str
    group_id: str
    token_hash: str
    config: StreamConfig
    owner: str
    settled: Settled

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token_hash(token), self.token_hash)


class KeptSessions:
    def __init__(
        self, redis: aioredis.Redis, resume_seconds: float, replica: str, *, replicas: int = 0
    ) -> None:
        """``replicas``: how many Redis replicas must have a charge (as :class:`Ledger`)."""
        self._redis = redis
        self._replicas = replicas
        self._resume = max(1, int(resume_seconds))
        self._live = self._resume + int(CLAIM_SECONDS)
        self.replica = replica
        self._settle = redis.register_script(SETTLE)

    @translated
    async def opened(
        self, session_id: str, school_id: str, group_id: str, token: str, config: StreamConfig
    ) -> None:
        """A session began here (or was taken over here: then its counts stay)."""
        key = state_key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "school": school_id,
                    "group": group_id,
                    "token": token_hash(token),
                    "config": config_json(config),
                    "owner": self.replica,
                },
            )
            pipe.hsetnx(key, "next_seq", 0)
            pipe.hsetnx(key, "samples", 0)
            pipe.hsetnx(key, "counts", "{}")
            pipe.expire(key, self._live)
            await pipe.execute()

    @translated
    async def settled(
        self,
        session_id: str,
        transcripts: list[dict[str, Any]],
        samples: int,
        counts: dict[str, Any],
        *,
        charges: tuple[Charge, ...] = (),
        detached: bool = False,
    ) -> list[tuple[Charge, CommitResult]]:
        """Transcripts were delivered (or would have been, to a client away: ``detached``,
        and the state keeps the ``RESUME_SECONDS`` it was given at the drop): the session
        stands at the end of the last one, and their ``charges`` are taken, in one script
        call. Returns what the ledger made of each charge (none without a reservation)."""
        charged = [c for c in charges if c.hold.reservation_id is not None]
        keys = [state_key(session_id), said_key(session_id), LEASES]
        args: list[Any] = [
            int(transcripts[-1]["seq"]) + 1,
            samples,
            _compact(counts),
            self._resume if detached else self._live,
            KEPT_IN_REDIS,
            DAY_TTL_SECONDS,
            HOLD_TTL_SECONDS,
            len(transcripts),
            *(_compact(t) for t in transcripts),
        ]
        for charge in charged:
            hold = charge.hold
            assert hold.reservation_id is not None
            keys.append(hold_key(hold.reservation_id))
            args += [
                hold.reservation_id,
                charge.actual_micro,
                charge.audio_ms,
                hold.model,
                hold.amount_micro,
            ]
        if not (self._replicas and charged):
            results = await self._settle(keys=keys, args=args)
        else:  # durable only once a replica has it, as the ledger's own commits
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._settle(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self._replicas, REPLICA_WAIT_MS)
                results, acked = await pipe.execute()
            if int(acked) < self._replicas:
                raise LedgerNotReplicated(f"{acked} of {self._replicas} replicas have the charges")
        return [
            (c, CommitResult(*(int(v) for v in r))) for c, r in zip(charged, results, strict=True)
        ]

    @translated
    async def refresh(self, session_ids: list[str], *, detached: bool = False) -> None:
        """Keep live sessions' state (the heartbeat), or give a dropped one
        ``RESUME_SECONDS`` from now (``detached``)."""
        if not session_ids:
            return
        ttl = self._resume if detached else self._live

        def add(pipe: Any, session_id: str) -> int:
            pipe.expire(state_key(session_id), ttl)
            pipe.expire(said_key(session_id), ttl)
            return 2

        await in_batches(self._redis, session_ids, add)

    @translated
    async def beat(self) -> None:
        """This replica is alive (for :data:`CLAIM_SECONDS`): a session it holds is handed
        over by it, not taken from it."""
        await self._redis.set(replica_key(self.replica), 1, ex=int(CLAIM_SECONDS))

    @translated
    async def alive(self, replica: str) -> bool:
        return bool(await self._redis.exists(replica_key(replica)))

    @translated
    async def handing_over(self, session_id: str) -> None:
        """This replica heard that another resumes the session, and is finishing it: the
        other waits for :meth:`released` rather than taking it as from a dead replica."""
        await self._redis.hset(state_key(session_id), "owner", HANDING_OVER + self.replica)

    @translated
    async def released(self, session_id: str) -> None:
        """This replica handed the session over: its state is final, and no one's."""
        await self._redis.hset(state_key(session_id), "owner", "")

    @translated
    async def forget(self, session_id: str) -> None:
        await self._redis.delete(state_key(session_id), said_key(session_id))

    @translated
    async def load(self, session_id: str) -> Stored | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(state_key(session_id))
            pipe.lrange(said_key(session_id), 0, -1)
            raw, said = await pipe.execute()
        fields = {text(k) or "": text(v) or "" for k, v in raw.items()}
        if "token" not in fields:
            return None
        settled = Settled(
            next_seq=int(fields["next_seq"]),
            samples=int(fields["samples"]),
            counts=json.loads(fields["counts"]),
            kept=tuple(json.loads(text(t) or "{}") for t in said),
        )
        return Stored(
            fields["school"],
            fields["group"],
            fields["token"],
            config_from(fields["config"]),
            fields.get("owner", ""),
            settled,
        )
