"""Typed application state: what the handlers share, and the keys of the services.

:class:`Gateway` holds what exists from the start (settings, metrics, the
registry, the policy, the budget service…). Each service that must be started
and stopped — the ledger's Redis, Whisper, fleet-wide presence — is created
in its own cleanup context and stored under its own :class:`web.AppKey`; the
read-only properties below reach them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web

from gateway.auth.link_codes import LinkCodes
from gateway.budget.policy import Policy
from gateway.budget.service import BudgetService
from gateway.budget.webhooks import WebhookSender
from gateway.observability.audit import AuditTrail
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.stream.limits import SessionLimits
from gateway.stream.registry import SessionRegistry
from gateway.web.denials import AuthGuard

if TYPE_CHECKING:
    from gateway.budget.store import EmbeddedRedis
    from gateway.stream.fleet import Fleet
    from gateway.stream.presence import Presence
    from gateway.stream.processor import WindowProcessor
    from gateway.stt.local_transcriber import LocalTranscriber
    from gateway.stt.service import SttService
    from gateway.web.ledger_link import LedgerLink
    from gateway.web.upstream import Upstream

LEDGER: web.AppKey[LedgerLink] = web.AppKey("ledger")
UPSTREAM: web.AppKey[Upstream] = web.AppKey("upstream")
PRESENCE: web.AppKey[Presence] = web.AppKey("presence")
#: One stream per group and the schools' caps across replicas (None without Redis).
FLEET: web.AppKey[Fleet | None] = web.AppKey("fleet")


@dataclass(frozen=True)
class Gateway:
    """Everything the handlers share, created with the application."""

    app: web.Application
    settings: Settings
    secret: str
    metrics: Metrics
    registry: SessionRegistry
    policy: Policy
    limits: SessionLimits
    audit: AuditTrail
    auth_guard: AuthGuard
    budget: BudgetService
    webhooks: WebhookSender
    link_codes: LinkCodes

    @property
    def provider(self) -> str:
        """``openai``, ``local`` or ``simulated``."""
        return self.settings.provider

    @property
    def simulated(self) -> bool:
        return self.settings.simulated_upstream

    @property
    def allowed_models(self) -> frozenset[str]:
        """Models a client may ask for: priced ones; with the local provider, its model only
        (every window is transcribed, and billed, as that model)."""
        if self.provider == "local":
            return frozenset({self.settings.LOCAL_WHISPER_MODEL})
        return frozenset(self.policy.pricing.models)

    # -- the started services --------------------------------------------------

    @property
    def service(self) -> SttService:
        return self.app[UPSTREAM].service

    @property
    def processor(self) -> WindowProcessor:
        return self.app[UPSTREAM].processor

    @property
    def local(self) -> LocalTranscriber | None:
        return self.app[UPSTREAM].local

    @property
    def redis(self) -> aioredis.Redis | None:
        return self.app[LEDGER].redis

    @property
    def embedded(self) -> EmbeddedRedis | None:
        return self.app[LEDGER].embedded

    @property
    def presence(self) -> Presence:
        return self.app[PRESENCE]

    @property
    def fleet(self) -> Fleet | None:
        return self.app[FLEET]


GATEWAY = web.AppKey("gateway", Gateway)
