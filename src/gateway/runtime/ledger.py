"""The budget ledger's Redis as a service: connected, closed, and able to say how it is
(the readiness check)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway.budget.journal import CommitJournal
from gateway.budget.ledger import Ledger
from gateway.errors import LedgerUnavailable
from gateway.observability.audit import AuditTrail
from gateway.observability.audit_anchor import AuditAnchor
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.redis import connection
from gateway.redis.embedded import EmbeddedRedis
from gateway.redis.errors import map_redis_errors
from gateway.redis.layout import PREFIX
from gateway.settings import Settings

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
    #: The budget's scripts on that Redis (None when disabled).
    ledger: Ledger | None = None

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
            with map_redis_errors():
                async with asyncio.timeout(1.0):
                    await self.redis.set(PROBE_KEY, int(time.time() * 1000), px=PROBE_TTL_MS)
        except LedgerUnavailable as exc:
            if metrics is not None:
                metrics.ledger_writable.set(0)
            down: dict[str, Any] = {
                "status": "down",
                "mode": self.mode,
                "latency_ms": None,
                "target": self.target,
                "error": exc.error,
            }
            if exc.refused:  # Redis answered, and refused the write
                down["reason"] = exc.message
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


@asynccontextmanager
async def open_ledger(settings: Settings, audit: AuditTrail) -> AsyncIterator[LedgerLink]:
    """Connect the ledger's Redis (``REDIS_URL``, else an embedded Redis in ``DATA_DIR``) and
    check the audit trail's anchor there; at the end, close the client and the embedded Redis."""
    if settings.BUDGET_ENFORCEMENT_MODE == "disabled":
        yield LedgerLink("disabled")
        return
    async with contextlib.AsyncExitStack() as stack:
        embedded: EmbeddedRedis | None = None
        if settings.REDIS_URL:
            url, mode = settings.REDIS_URL, "external"
            client = connection.connect(url, settings.REDIS_MODE, settings.REDIS_SENTINEL_MASTER)
        else:
            embedded = EmbeddedRedis(settings.data_dir)
            await embedded.start()
            stack.push_async_callback(embedded.stop)
            url, mode = embedded.url, "embedded"
            client = connection.connect(url)
        stack.push_async_callback(connection.close, client)
        replicas = 1 if settings.REDIS_URL and settings.REDIS_MODE == "sentinel" else 0
        link = LedgerLink(
            mode,
            client,
            embedded,
            topology=settings.REDIS_MODE,
            target=connection.redis_target(url),
            ledger=Ledger(client, replicas=replicas),
        )
        log.info("ledger.connected", mode=mode, topology=link.topology, target=link.target)
        anchor = AuditAnchor(client, audit)
        await anchor.check()
        stack.push_async_callback(anchor.close)
        yield link
