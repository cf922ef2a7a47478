"""The gateway's background services, each an async context: the lease sweeper and
fleet-wide presence with the fleet's claims."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from gateway.auth.guard import AuthGuard
from gateway.budget.service import BudgetService
from gateway.errors import LedgerUnavailable
from gateway.fleet.claims import Fleet
from gateway.fleet.kept import KeptSessions
from gateway.fleet.presence import Presence
from gateway.observability.logging import get_logger
from gateway.stream.registry import SessionRegistry

log = get_logger("gateway.background")

LEASE_SWEEP_SECONDS = 30.0


@asynccontextmanager
async def sweeping(budget: BudgetService, auth_guard: AuthGuard) -> AsyncIterator[None]:
    """Expired holds go back to their scopes even when no new reservation comes; failed
    authentications are written out in aggregate (all of them at the end)."""
    sweeper = asyncio.create_task(_sweep(budget, auth_guard))
    try:
        yield
    finally:
        await cancelled(sweeper)
        auth_guard.flush(everything=True)


async def _sweep(budget: BudgetService, auth_guard: AuthGuard) -> None:
    while True:
        await asyncio.sleep(LEASE_SWEEP_SECONDS)
        auth_guard.flush()
        ledger = budget.ledger
        if ledger is None:
            continue
        try:
            reclaimed = await ledger.reclaim(int(time.time() * 1000))
        except LedgerUnavailable:
            continue
        if reclaimed:
            log.warning("budget.leases_reclaimed", holds=reclaimed)


@asynccontextmanager
async def open_fleet(
    redis: aioredis.Redis | None,
    registry: SessionRegistry,
    resume_seconds: float,
    *,
    replicas: int = 0,
) -> AsyncIterator[tuple[Fleet | None, Presence, KeptSessions | None]]:
    """Open streams published fleet-wide, in the ledger's Redis (this replica's alone without),
    the fleet's claims on groups (one stream per group, the schools' caps), and what sessions
    keep there to be resumed on any replica (with ``resume_seconds``; ``replicas``: the Redis
    replicas a charge must reach, as the ledger's)."""
    presence = Presence(redis)
    fleet = (
        None
        if redis is None
        else Fleet(redis, registry.replaced_elsewhere, on_notice=registry.budget_notice)
    )
    kept = (
        None
        if fleet is None or not resume_seconds
        else KeptSessions(fleet.redis, resume_seconds, fleet.replica, replicas=replicas)
    )
    if kept is not None:
        with contextlib.suppress(LedgerUnavailable):
            await kept.beat()
    heartbeat = asyncio.create_task(presence.heartbeat(registry.sessions, fleet, kept))
    if fleet is not None:
        fleet.start()
    try:
        yield fleet, presence, kept
    finally:
        await cancelled(heartbeat)
        if fleet is not None:
            await fleet.close()
        await presence.close()


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
