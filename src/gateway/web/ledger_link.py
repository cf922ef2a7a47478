"""The budget ledger's Redis as a service: connected in its own cleanup context, closed
there, and able to say how it is (the readiness check)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import ResponseError

from gateway.budget import connection
from gateway.budget.journal import CommitJournal
from gateway.budget.layout import PREFIX
from gateway.budget.ledger import Ledger
from gateway.budget.service import LEDGER_ERRORS
from gateway.budget.store import EmbeddedRedis
from gateway.observability.audit_anchor import AuditAnchor
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.web.state import GATEWAY, LEDGER

log = get_logger("gateway.ledger")
#: Written by each readiness check and metrics scrape: the ledger must take writes.
PROBE_KEY = f"{PREFIX}:probe:{socket.gethostname()}:{os.getpid()}"
PROBE_TTL_MS = 60_000


@dataclass(frozen=True, slots=True)
class LedgerLink:
    """``mode``: ``external`` (``REDIS_URL``), ``embedded``, or ``disabled`` (no ledger)."""

    mode: str
    redis: aioredis.Redis | None = None
    embedded: EmbeddedRedis | None = None
    #: ``REDIS_MODE``: standalone, cluster or sentinel (the embedded Redis is standalone).
    topology: str = "standalone"
    #: ``host:port`` of the Redis (or its sentinels), never its password.
    target: str | None = None

    async def check(
        self, journal: CommitJournal | None, metrics: Metrics | None = None
    ) -> dict[str, Any]:
        """The readiness check: a write (a Redis that answers pings but refuses writes —
        out of memory, a read-only replica — takes no reservation), its latency, restarts
        and charges still owed."""
        if self.redis is None:
            return {"status": "disabled", "mode": self.mode, "latency_ms": None}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(1.0):
                await self.redis.set(PROBE_KEY, int(time.time() * 1000), px=PROBE_TTL_MS)
        except LEDGER_ERRORS as exc:
            if metrics is not None:
                metrics.ledger_writable.set(0)
            down: dict[str, Any] = {
                "status": "down",
                "mode": self.mode,
                "latency_ms": None,
                "target": self.target,
                "error": type(exc).__name__,
            }
            if isinstance(exc, ResponseError):  # Redis answered, and refused the write
                down["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return down
        if metrics is not None:
            metrics.ledger_writable.set(1)
        check: dict[str, Any] = {
            "status": "ok",
            "mode": self.mode,
            "topology": self.topology,
            "target": self.target,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if self.embedded is not None:
            check["restarts"] = self.embedded.restarts
        if journal is not None and len(journal):
            check["charges_owed"] = len(journal)
        return check


async def ledger_context(app: web.Application) -> AsyncIterator[None]:
    """Connect the ledger (``REDIS_URL``, else an embedded Redis in ``DATA_DIR``), replay
    owed charges; at the end, close the budget service, the client and the embedded Redis."""
    gateway = app[GATEWAY]
    settings = gateway.settings
    link = LedgerLink("disabled")
    if settings.BUDGET_ENFORCEMENT_MODE != "disabled":
        embedded: EmbeddedRedis | None = None
        if settings.REDIS_URL:
            url, mode = settings.REDIS_URL, "external"
            client = connection.connect(url, settings.REDIS_MODE, settings.REDIS_SENTINEL_MASTER)
        else:
            embedded = EmbeddedRedis(settings.data_dir)
            await embedded.start()
            url, mode = embedded.url, "embedded"
            client = connection.connect(url)
        link = LedgerLink(
            mode,
            client,
            embedded,
            topology=settings.REDIS_MODE,
            target=connection.redis_target(url),
        )
        assert link.redis is not None
        replicas = 1 if settings.REDIS_URL and settings.REDIS_MODE == "sentinel" else 0
        gateway.budget.ledger = Ledger(link.redis, replicas=replicas)
        log.info("ledger.connected", mode=mode, topology=link.topology, target=link.target)
        gateway.budget.start_replay()
    app[LEDGER] = link
    anchor = None if link.redis is None else AuditAnchor(link.redis, gateway.audit)
    if anchor is not None:
        await anchor.check()
    try:
        yield
    finally:
        if anchor is not None:
            await anchor.close()
        await gateway.budget.close()
        if link.redis is not None:
            await connection.close(link.redis)
        if link.embedded is not None:
            await link.embedded.stop()
