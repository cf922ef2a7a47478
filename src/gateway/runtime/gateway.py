"""The gateway as the handlers see it: every service, started, in one frozen object.

:func:`gateway.runtime.root.open_gateway` builds it once every service has
started, in the order it writes down; nothing is added or replaced after that,
and nothing in it reaches back to the web application.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.auth.guard import AuthGuard
from gateway.auth.link_codes import LinkCodes
from gateway.budget.policy import Policy
from gateway.budget.service import BudgetService
from gateway.budget.webhooks import WebhookSender
from gateway.fleet.claims import Fleet
from gateway.fleet.kept import KeptSessions
from gateway.fleet.presence import Presence
from gateway.observability.audit import AuditTrail
from gateway.observability.metrics import Metrics
from gateway.redis.embedded import EmbeddedRedis
from gateway.runtime.ledger import LedgerLink
from gateway.runtime.pings import Pings
from gateway.runtime.upstream import Upstream
from gateway.settings import Settings
from gateway.stream.limits import SessionLimits
from gateway.stream.registry import SessionRegistry
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.service import SttService
from gateway.window.interim import InterimDecoder
from gateway.window.pipeline import WindowProcessor


@dataclass(frozen=True)
class Gateway:
    """Everything the handlers share."""

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
    ledger: LedgerLink
    upstream: Upstream
    #: Live words for open windows (None: ``INTERIM_PROVIDER=off``).
    interims: InterimDecoder | None
    presence: Presence
    #: One stream per group and the schools' caps across replicas (None without Redis).
    fleet: Fleet | None
    #: What sessions keep in Redis to be resumed on any replica (None without Redis, or
    #: with ``RESUME_SECONDS=0``).
    kept: KeptSessions | None
    #: The readiness checks, one per service, in start order.
    pings: Pings

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

    @property
    def service(self) -> SttService:
        return self.upstream.service

    @property
    def processor(self) -> WindowProcessor:
        return self.upstream.processor

    @property
    def local(self) -> LocalTranscriber | None:
        return self.upstream.local

    @property
    def redis(self) -> aioredis.Redis | None:
        return self.ledger.redis

    @property
    def embedded(self) -> EmbeddedRedis | None:
        return self.ledger.embedded
