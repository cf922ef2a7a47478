"""Typed application state shared by the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web

from gateway.budget.policy import Policy
from gateway.budget.service import BudgetService
from gateway.budget.store import EmbeddedRedis
from gateway.budget.webhooks import WebhookSender
from gateway.observability.audit import AuditTrail
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.stream.limits import SessionLimits
from gateway.stream.presence import Presence
from gateway.stream.processor import WindowProcessor
from gateway.stream.registry import SessionRegistry
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.service import SttService
from gateway.web.denials import AuthGuard


@dataclass
class Gateway:
    """Everything the handlers share, created and closed with the application."""

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
    service: SttService | None = None
    processor: WindowProcessor | None = None
    redis: aioredis.Redis | None = None
    embedded: EmbeddedRedis | None = None
    redis_mode: str = "disabled"
    upstream_url: str = ""
    simulated: bool = False
    provider: str = "openai"
    #: The in-process model, when ``provider`` is ``local``.
    local: LocalTranscriber | None = None
    #: Open streams of every replica (set up with the ledger's Redis).
    presence: Presence = field(default_factory=lambda: Presence(None))

    @property
    def allowed_models(self) -> frozenset[str]:
        """Models a client may ask for: priced ones; with the local provider, its model only
        (every window is transcribed, and billed, as that model)."""
        if self.provider == "local":
            return frozenset({self.settings.LOCAL_WHISPER_MODEL})
        return frozenset(self.policy.pricing.models)


GATEWAY = web.AppKey("gateway", Gateway)
