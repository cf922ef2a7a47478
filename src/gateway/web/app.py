"""The aiohttp application: typed state, lifecycle, routes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from gateway import __version__, lockfile
from gateway.auth.secret import resolve_secret
from gateway.budget.journal import CommitJournal
from gateway.budget.ledger import Ledger
from gateway.budget.policy import Policy, load_policy
from gateway.budget.service import LEDGER_ERRORS, BudgetService
from gateway.budget.store import EmbeddedRedis
from gateway.budget.webhooks import WebhookSender
from gateway.errors import ConfigurationError
from gateway.observability import tracing
from gateway.observability.audit import AuditTrail, audit_key
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.simulated import whisper as simulated_whisper
from gateway.stream.limits import SessionLimits
from gateway.stream.presence import Presence
from gateway.stream.processor import WindowProcessor
from gateway.stream.registry import SessionRegistry
from gateway.stream.vad import VadParams
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.openai_transcriber import OpenAITranscriber
from gateway.stt.rpm import RpmLimiter
from gateway.stt.service import SttService, UpstreamConfig
from gateway.stt.transcriber import Transcriber
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
from gateway.web.alerts import AlertDispatcher
from gateway.web.cors import make_cors_middleware
from gateway.web.denials import AuthGuard
from gateway.web.middleware import make_middleware
from gateway.web.state import GATEWAY, Gateway

log = get_logger("gateway.app")

#: Upload limit for multipart transcription requests; JSON bodies are limited to 1 MiB.
CLIENT_MAX_SIZE = 26 * 1024 * 1024
SIMULATED_API_KEY = "simulated"
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_MAX_CONNECTIONS = 64
LEASE_SWEEP_SECONDS = 30.0
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
    audit = AuditTrail(settings.audit_log_path, audit_key(secret))
    gateway = Gateway(
        settings=settings,
        secret=secret,
        metrics=metrics,
        registry=SessionRegistry(settings.MAX_SESSIONS, metrics),
        policy=policy,
        limits=SessionLimits(
            max_frame_bytes=settings.MAX_FRAME_BYTES,
            idle_timeout=settings.IDLE_TIMEOUT_SECONDS,
            max_pending_seconds=settings.MAX_PENDING_AUDIO_SECONDS,
            max_in_flight=settings.STT_MAX_IN_FLIGHT_PER_SESSION,
            finish_timeout=settings.SHUTDOWN_GRACE_SECONDS,
            vad=VadParams(threshold_dbfs=settings.VAD_THRESHOLD_DBFS),
            window_max_seconds=settings.STT_WINDOW_MAX_SECONDS,
            prompt_continuity=settings.STT_PROMPT_CONTINUITY,
            shorten_pauses=settings.STT_SHORTEN_PAUSES,
        ),
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
    )
    app = web.Application(
        middlewares=[make_middleware(metrics), make_cors_middleware(settings.allowed_origins)],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[GATEWAY] = gateway
    app.cleanup_ctx.append(_data_dir)
    app.cleanup_ctx.append(_ledger)
    app.cleanup_ctx.append(_presence)
    app.cleanup_ctx.append(_upstream)
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


async def _ledger(app: web.Application) -> AsyncIterator[None]:
    gateway = app[GATEWAY]
    settings = gateway.settings
    embedded: EmbeddedRedis | None = None
    if settings.BUDGET_ENFORCEMENT_MODE != "disabled":
        if settings.REDIS_URL:
            url, gateway.redis_mode = settings.REDIS_URL, "external"
        else:
            embedded = EmbeddedRedis(settings.data_dir)
            await embedded.start()
            url, gateway.redis_mode = embedded.url, "embedded"
            gateway.embedded = embedded
        gateway.redis = connect_redis(url)
        gateway.budget.ledger = Ledger(gateway.redis)
        log.info("ledger.connected", mode=gateway.redis_mode)
        gateway.budget.start_replay()
    gateway.webhooks.start()
    gateway.budget.add_alert_listener(AlertDispatcher(gateway).on_alert)
    sweeper = asyncio.create_task(_reclaim_leases(gateway))
    yield
    sweeper.cancel()
    gateway.auth_guard.flush(everything=True)
    await gateway.budget.close()
    await gateway.webhooks.close()
    if gateway.redis is not None:
        await gateway.redis.aclose()
    if embedded is not None:
        await embedded.stop()


async def _presence(app: web.Application) -> AsyncIterator[None]:
    """Open streams published fleet-wide, in the ledger's Redis (this replica's alone without)."""
    gateway = app[GATEWAY]
    gateway.presence = Presence(gateway.redis)
    heartbeat = asyncio.create_task(gateway.presence.heartbeat(gateway.registry.sessions))
    yield
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await heartbeat
    await gateway.presence.close()


async def _reclaim_leases(gateway: Gateway) -> None:
    """Return expired holds to their scopes even when no new reservation comes."""
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


def connect_redis(url: str) -> aioredis.Redis:
    """A client whose pool waits (bounded) for a free connection instead of failing."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return aioredis.Redis(connection_pool=pool)


def _local_transcriber(settings: Settings) -> LocalTranscriber:
    transcriber = LocalTranscriber(
        model=settings.LOCAL_WHISPER_MODEL,
        device=settings.LOCAL_WHISPER_DEVICE,
        compute_type=settings.LOCAL_WHISPER_COMPUTE_TYPE,
        workers=settings.LOCAL_WHISPER_WORKERS,
    )
    problem = transcriber.model_problem()
    if problem:
        raise ConfigurationError(problem)
    return transcriber


def _check_local_price(settings: Settings, policy: Policy) -> None:
    """Local windows are metered like any other: the policy must price the local model."""
    if settings.provider == "local" and settings.LOCAL_WHISPER_MODEL not in policy.pricing.models:
        raise ConfigurationError(
            f"LOCAL_WHISPER_MODEL {settings.LOCAL_WHISPER_MODEL!r} has no price in the budget "
            f"policy {policy.path}: add it to pricing_usd_per_minute (0 for free on-premise "
            "compute; see docs/Budget.md)"
        )


async def _load_local(gateway: Gateway, transcriber: LocalTranscriber) -> None:
    try:
        await transcriber.load()
    except ConfigurationError as exc:
        log.error("local_whisper.load_failed", problem=str(exc))


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    gateway = app[GATEWAY]
    settings = gateway.settings
    runner: web.AppRunner | None = None
    loader: asyncio.Task[None] | None = None
    transcriber: Transcriber
    gateway.provider = settings.provider
    if settings.provider == "local":
        url = f"local:{settings.LOCAL_WHISPER_MODEL}"
        local = _local_transcriber(settings)
        gateway.local = transcriber = local
        loader = asyncio.create_task(_load_local(gateway, local))
    elif settings.simulated_upstream:
        runner, url = await simulated_whisper.start(
            simulated_whisper.FakeWhisper(
                simulated_whisper.Behaviour(latency_ms=300, jitter_ms=100)
            )
        )
        api_key = SIMULATED_API_KEY
        log.warning(
            "upstream.simulated",
            upstream=url,
            message="no OPENAI_API_KEY: using the simulated Whisper; transcripts are synthetic",
        )
    else:
        url = settings.upstream_url
        api_key = settings.OPENAI_API_KEY or SIMULATED_API_KEY
    if settings.provider != "local":
        transcriber = OpenAITranscriber(
            api_key=api_key, base_url=url, timeout=settings.STT_REQUEST_TIMEOUT_SECONDS
        )
    gateway.upstream_url = url
    gateway.simulated = settings.simulated_upstream
    gateway.metrics.upstream_info.labels(
        provider=settings.provider, model=settings.upstream_model_label
    ).set(1)
    gateway.service = SttService(
        transcriber,
        UpstreamConfig(
            max_concurrency=settings.STT_MAX_CONCURRENCY,
            max_retries=settings.STT_MAX_RETRIES,
            fail_max=settings.BREAKER_FAIL_MAX,
            reset_seconds=settings.BREAKER_RESET_SECONDS,
            window_seconds=settings.STT_WINDOW_SECONDS,
            window_max_seconds=settings.STT_WINDOW_MAX_SECONDS,
        ),
        gateway.metrics,
    )
    if settings.OPENAI_RPM_LIMIT and gateway.redis is not None:
        gateway.service.rpm = RpmLimiter(gateway.redis, settings.OPENAI_RPM_LIMIT)
    gateway.processor = WindowProcessor(gateway.service, gateway.budget, gateway.metrics)
    log.info(
        "gateway.started",
        version=__version__,
        upstream=url,
        provider=settings.provider,
        model=settings.upstream_model_label,
        simulated=settings.simulated_upstream,
        env=settings.APP_ENV,
        budget_mode=settings.BUDGET_ENFORCEMENT_MODE,
        policy=str(settings.budget_policy_path),
    )
    if settings.provider == "local":
        log.info(
            "upstream.local",
            model=settings.LOCAL_WHISPER_MODEL,
            message=f"using local Whisper {settings.LOCAL_WHISPER_MODEL} in this process "
            "(set OPENAI_API_KEY to use OpenAI)",
        )
    yield
    if loader is not None:
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
    await gateway.service.close()
    if runner is not None:
        await runner.cleanup()


async def _shutdown_tracing(provider: Any) -> None:
    tracing.shutdown(provider)


async def _drain(app: web.Application) -> None:
    gateway = app[GATEWAY]
    await gateway.registry.drain(gateway.settings.SHUTDOWN_GRACE_SECONDS)
