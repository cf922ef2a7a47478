"""The aiohttp application: typed state, lifecycle, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway import lockfile
from gateway.auth.link_codes import LinkCodes
from gateway.auth.secret import resolve_audit_key, resolve_secret
from gateway.budget.journal import CommitJournal
from gateway.budget.policy import Policy, load_policy
from gateway.budget.service import BudgetService
from gateway.budget.webhooks import WebhookSender
from gateway.errors import ConfigurationError
from gateway.observability import tracing
from gateway.observability.audit import AuditTrail
from gateway.observability.audit_keys import derived_key
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.stream.limits import SessionLimits
from gateway.stream.registry import SessionRegistry
from gateway.stream.vad import VadParams
from gateway.web import (
    alerts_api,
    health,
    listen,
    pages,
    passthrough,
    sessions_api,
    settings_api,
    tokens_api,
    usage_api,
)
from gateway.web.background import alerts_context, presence_context, sweeper_context
from gateway.web.cors import make_cors_middleware
from gateway.web.denials import AuthGuard
from gateway.web.ledger_link import ledger_context
from gateway.web.middleware import make_middleware
from gateway.web.state import GATEWAY, LEDGER, Gateway
from gateway.web.upstream import upstream_context

log = get_logger("gateway.app")

#: Upload limit for multipart transcription requests; JSON bodies are limited to 1 MiB.
CLIENT_MAX_SIZE = 26 * 1024 * 1024
JOURNAL_FILE = "ledger-journal.jsonl"


def create_app(settings: Settings, *, span_exporter: Any = None) -> web.Application:
    """The gateway application. ``span_exporter`` replaces the OTLP exporter (tests)."""
    metrics = Metrics()
    tracer_provider = tracing.configure(
        settings.OTEL_TRACING_ENABLED, settings.OTEL_SERVICE_NAME, span_exporter
    )
    secret = resolve_secret(settings)
    policy = load_policy(settings.budget_policy_path)
    _check_local_price(settings, policy)
    audit = AuditTrail(
        settings.audit_log_path, resolve_audit_key(settings), older_keys=[derived_key(secret)]
    )
    app = web.Application(
        middlewares=[make_middleware(metrics), make_cors_middleware(settings.allowed_origins)],
        client_max_size=CLIENT_MAX_SIZE,
    )
    gateway = Gateway(
        app=app,
        settings=settings,
        secret=secret,
        metrics=metrics,
        registry=SessionRegistry(settings.MAX_SESSIONS, metrics),
        policy=policy,
        limits=session_limits(settings),
        audit=audit,
        auth_guard=AuthGuard(audit, failures_per_minute=settings.AUTH_FAILURES_PER_MINUTE),
        budget=BudgetService(
            policy,
            None,
            mode=settings.BUDGET_ENFORCEMENT_MODE,
            metrics=metrics,
            lease_seconds=settings.BUDGET_LEASE_SECONDS,
            journal=CommitJournal(settings.data_dir / JOURNAL_FILE),
        ),
        webhooks=WebhookSender(guarded=settings.APP_ENV != "dev"),
        link_codes=LinkCodes(
            lambda: app[LEDGER].redis if LEDGER in app else None,
            settings.LINK_CODE_TTL_SECONDS,
        ),
    )
    app[GATEWAY] = gateway
    # Each service starts in order and stops in reverse, in its own context.
    for context in (
        _data_dir,
        ledger_context,
        alerts_context,
        sweeper_context,
        presence_context,
        upstream_context,
    ):
        app.cleanup_ctx.append(context)
    app.on_shutdown.append(_drain)
    if tracer_provider is not None:
        app.on_cleanup.append(lambda _app: _shutdown_tracing(tracer_provider))
    pages.add_routes(app.router, health.index)
    app.router.add_get("/api/v1/health", health.health)
    app.router.add_get("/api/v1/ready", health.ready)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/api/v1/openapi.json", health.openapi_document)
    app.router.add_get("/api/v1/listen", listen.listen)
    for module in (tokens_api, settings_api, usage_api, alerts_api, sessions_api):
        module.add_routes(app.router)
    app.router.add_post("/v1/audio/transcriptions", passthrough.transcriptions)
    return app


def session_limits(settings: Settings) -> SessionLimits:
    return SessionLimits(
        max_frame_bytes=settings.MAX_FRAME_BYTES,
        idle_timeout=settings.IDLE_TIMEOUT_SECONDS,
        max_pending_seconds=settings.MAX_PENDING_AUDIO_SECONDS,
        max_in_flight=settings.STT_MAX_IN_FLIGHT_PER_SESSION,
        finish_timeout=settings.SHUTDOWN_GRACE_SECONDS,
        vad=VadParams(threshold_dbfs=settings.VAD_THRESHOLD_DBFS),
        window_max_seconds=settings.STT_WINDOW_MAX_SECONDS,
        prompt_continuity=settings.STT_PROMPT_CONTINUITY,
        shorten_pauses=settings.STT_SHORTEN_PAUSES,
    )


async def _data_dir(app: web.Application) -> AsyncIterator[None]:
    """One gateway per DATA_DIR: its audit chain and embedded Redis are not shareable."""
    data_dir = app[GATEWAY].settings.data_dir
    lock = lockfile.hold(
        data_dir / "gateway.lock",
        f"DATA_DIR {data_dir} is in use by another gateway; give each its own DATA_DIR",
    )
    try:
        yield
    finally:
        lock.close()


def _check_local_price(settings: Settings, policy: Policy) -> None:
    """Every window is metered: the policy must price the model windows use by default
    (the local model, or ``STT_MODEL``), else every stream would be refused."""
    if settings.default_model in policy.pricing.models:
        return
    if settings.provider == "local":
        raise ConfigurationError(
            f"LOCAL_WHISPER_MODEL {settings.LOCAL_WHISPER_MODEL!r} has no price in the budget "
            f"policy {policy.path}: add it to pricing_usd_per_minute (0 for free on-premise "
            "compute; see docs/Budget.md)"
        )
    priced = ", ".join(sorted(policy.pricing.models))
    raise ConfigurationError(
        f"STT_MODEL {settings.STT_MODEL!r} has no price in the budget policy {policy.path} "
        f"(priced: {priced}): choose one of those or add it to pricing_usd_per_minute"
    )


async def _shutdown_tracing(provider: Any) -> None:
    tracing.shutdown(provider)


async def _drain(app: web.Application) -> None:
    gateway = app[GATEWAY]
    await gateway.registry.drain(gateway.settings.SHUTDOWN_GRACE_SECONDS)
