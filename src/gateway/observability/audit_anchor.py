"""The audit trail's anchor outside its directory: its last ``seq`` and ``hash`` in Redis.

The signed head beside the trail catches records cut from the end, but someone who
deletes the trail *and* its head (or the whole data directory) and restarts the
gateway would start a new, valid trail. The anchor — kept in the ledger's Redis
under a key named after this host and the trail's path, written after each record
(coalesced, off the caller's path) — survives that: at start, a trail shorter
than its anchor, or whose record at the anchor's ``seq`` has another hash, is
recorded as ``audit.head_mismatch``. With the embedded Redis, which lives in the
data directory too, it only covers a trail deleted on its own; ``REDIS_URL`` is
what makes it independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket

import redis.asyncio as aioredis

from gateway.errors import LedgerUnavailable
from gateway.observability.audit import AuditTrail
from gateway.observability.logging import get_logger
from gateway.redis.connection import text
from gateway.redis.errors import map_redis_errors
from gateway.redis.layout import PREFIX

log = get_logger("gateway.audit")


def anchor_key(trail: AuditTrail) -> str:
    where = f"{socket.gethostname()}:{trail.path.resolve()}"
    return f"{PREFIX}:audit-anchor:" + hashlib.sha256(where.encode()).hexdigest()[:24]


class AuditAnchor:
    def __init__(self, redis: aioredis.Redis, trail: AuditTrail) -> None:
        self._redis = redis
        self._trail = trail
        self.key = anchor_key(trail)
        self._latest: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def check(self) -> None:
        """Compare the trail with its anchor (a trail cut or replaced is recorded), then
        follow the trail's records."""
        try:
            with map_redis_errors():
                stored = await self._redis.hgetall(self.key)
        except LedgerUnavailable as exc:
            log.warning("audit.anchor_unreadable", error=exc.error)
            stored = {}
        anchored = {str(text(k)): str(text(v)) for k, v in stored.items()}
        problem = self._problem(anchored)
        if problem is not None:
            self._trail.mismatch(problem)
        self._trail.on_record = self.noted
        self.noted(self._trail.seq, self._trail.hash_at(self._trail.seq) or "")

    def _problem(self, anchored: dict[str, str]) -> str | None:
        try:
            seq, hash_ = int(anchored["seq"]), anchored["hash"]
        except (KeyError, ValueError):
            return None  # never anchored here
        if seq > self._trail.seq:
            return (
                f"the trail ends at seq {self._trail.seq} but the ledger's Redis anchored "
                f"seq {seq}: the trail was cut or replaced"
            )
        if self._trail.hash_at(seq) != hash_:
            return f"seq {seq} does not match the anchor in Redis: the trail was rewritten"
        return None

    def noted(self, seq: int, hash_: str) -> None:
        """A record was written: anchor it (the latest only, written in the background)."""
        self._latest = (seq, hash_)
        if self._writer is None or self._writer.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the next record will
                self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        written: tuple[int, str] | None = None
        while self._latest != written:
            written = self._latest
            assert written is not None
            try:
                with map_redis_errors():
                    await self._redis.hset(
                        self.key, mapping={"seq": written[0], "hash": written[1]}
                    )
            except LedgerUnavailable:
                return  # the next record tries again

    async def close(self) -> None:
        """Stop following the trail; the last record is anchored first."""
        self._trail.on_record = None
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 2.0)
