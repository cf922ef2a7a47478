"""The gateway's background services, each started and stopped in its own cleanup
context: budget alerts and their webhooks, the lease sweeper, fleet-wide presence."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.budget.service import LEDGER_ERRORS
from gateway.observability.logging import get_logger
from gateway.stream.fleet import Fleet
from gateway.stream.presence import Presence
from gateway.web.alerts import AlertDispatcher
from gateway.web.state import FLEET, GATEWAY, LEDGER, PRESENCE, Gateway

log = get_logger("gateway.background")

LEASE_SWEEP_SECONDS = 30.0


async def alerts_context(app: web.Application) -> AsyncIterator[None]:
    """Alerts fired by a commit reach the audit trail, the school's sessions and its webhook."""
    gateway = app[GATEWAY]
    gateway.webhooks.start()
    gateway.budget.add_alert_listener(AlertDispatcher(gateway).on_alert)
    try:
        yield
    finally:
        await gateway.webhooks.close()


async def sweeper_context(app: web.Application) -> AsyncIterator[None]:
    """Expired holds go back to their scopes even when no new reservation comes; failed
    authentications are written out in aggregate."""
    gateway = app[GATEWAY]
    sweeper = asyncio.create_task(_sweep(gateway))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        gateway.auth_guard.flush(everything=True)


async def _sweep(gateway: Gateway) -> None:
    while True:
        await asyncio.sleep(LEASE_SWEEP_SECONDS)
        gateway.auth_guard.flush()
        ledger = gateway.budget.ledger
        if ledger is None:
            continue
        try:
            reclaimed = await ledger.reclaim(int(time.time() * 1000))
        except LEDGER_ERRORS:
            continue
        if reclaimed:
            log.warning("budget.leases_reclaimed", holds=reclaimed)


async def presence_context(app: web.Application) -> AsyncIterator[None]:
    """Open streams published fleet-wide, in the ledger's Redis (this replica's alone without),
    and the fleet's claims on groups (one stream per group, the schools' caps)."""
    gateway = app[GATEWAY]
    redis = app[LEDGER].redis
    presence = Presence(redis)
    app[PRESENCE] = presence
    registry = gateway.registry
    fleet = (
        None
        if redis is None
        else Fleet(redis, registry.replaced_elsewhere, on_notice=registry.budget_notice)
    )
    app[FLEET] = fleet
    heartbeat = asyncio.create_task(presence.heartbeat(gateway.registry.sessions, fleet))
    if fleet is not None:
        fleet.start()
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        if fleet is not None:
            await fleet.close()
        await presence.close()
