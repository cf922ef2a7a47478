"""The composition root: the one place that builds the gateway.

:func:`prepare` reads and checks what needs no I/O (the secret, the policy, the
audit key) so a bad configuration stops the start in one line before anything
listens. :func:`open_gateway` then starts the services in the order written
here, each one's close registered as it starts, and yields the frozen
:class:`~gateway.runtime.gateway.Gateway`; leaving it closes them in reverse::

    DATA_DIR lock → ledger (Redis, audit anchor) → budget (replay owed charges)
    → saturation → upstream (Whisper, window processor) → interims → loop-lag
    measuring → fleet and presence →
    alerts and webhooks → lease sweeper
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from gateway import lockfile
from gateway.auth.guard import AuthGuard
from gateway.auth.link_codes import LinkCodes
from gateway.auth.secret import resolve_audit_key, resolve_secret
from gateway.budget.alerting import AlertEvents
from gateway.budget.journal import CommitJournal
from gateway.budget.policy import Policy, load_policy
from gateway.budget.service import BudgetService
from gateway.budget.webhooks import WebhookSender
from gateway.errors import ConfigurationError
from gateway.observability import tracing
from gateway.observability.audit import AuditTrail
from gateway.observability.audit_keys import derived_key
from gateway.observability.metrics import Metrics
from gateway.runtime.alerts import AlertDispatcher
from gateway.runtime.background import open_fleet, sweeping
from gateway.runtime.gateway import Gateway
from gateway.runtime.interims import open_interims
from gateway.runtime.ledger import LedgerLink, open_ledger
from gateway.runtime.looplag import measuring
from gateway.runtime.pings import Pings
from gateway.runtime.upstream import Upstream, open_upstream
from gateway.settings import Settings
from gateway.stream.limits import SessionLimits
from gateway.stream.registry import SessionRegistry
from gateway.stream.saturation import Saturation, SaturationLimits
from gateway.stream.vad import VadParams

JOURNAL_FILE = "ledger-journal.jsonl"


@dataclass(frozen=True)
class Foundation:
    """What the gateway is built from, read and checked before anything starts."""

    settings: Settings
    secret: str
    policy: Policy
    audit: AuditTrail
    metrics: Metrics
    tracer_provider: Any = None


def prepare(settings: Settings, *, span_exporter: Any = None) -> Foundation:
    """Read the secret, the policy and the audit key; ConfigurationError names what is wrong.
    ``span_exporter`` replaces the OTLP exporter (tests)."""
    secret = resolve_secret(settings)
    policy = load_policy(settings.budget_policy_path)
    check_default_model_priced(settings, policy)
    check_interim_model_priced(settings, policy)
    audit = AuditTrail(
        settings.audit_log_path, resolve_audit_key(settings), older_keys=[derived_key(secret)]
    )
    tracer_provider = tracing.configure(
        settings.OTEL_TRACING_ENABLED, settings.OTEL_SERVICE_NAME, span_exporter
    )
    return Foundation(settings, secret, policy, audit, Metrics(), tracer_provider)


@asynccontextmanager
async def open_gateway(base: Foundation) -> AsyncIterator[Gateway]:
    """Start every service in order, yield the gateway, close them in reverse."""
    settings, metrics = base.settings, base.metrics
    async with AsyncExitStack() as stack:
        if base.tracer_provider is not None:
            stack.callback(tracing.shutdown, base.tracer_provider)
        stack.callback(_hold_data_dir(settings).close)
        ledger = await stack.enter_async_context(open_ledger(settings, base.audit))
        events = AlertEvents()
        stack.push_async_callback(events.close)
        budget = _budget(base, ledger, events)
        stack.push_async_callback(budget.close)
        saturation = _saturation(settings)
        upstream = await stack.enter_async_context(
            open_upstream(settings, metrics, budget, ledger.redis, saturation)
        )
        interims = await stack.enter_async_context(
            open_interims(settings, metrics, budget, upstream, saturation)
        )
        registry = SessionRegistry(settings.MAX_SESSIONS, metrics, saturation)
        await stack.enter_async_context(
            measuring(saturation, metrics, lambda: len(registry), registry.admission_closed)
        )
        fleet, presence, kept = await stack.enter_async_context(
            open_fleet(
                ledger.redis,
                registry,
                settings.RESUME_SECONDS,
                replicas=ledger.ledger.replicas if ledger.ledger else 0,
            )
        )
        webhooks = WebhookSender(guarded=settings.APP_ENV != "dev")
        webhooks.start()
        stack.push_async_callback(webhooks.close)
        auth_guard = AuthGuard(base.audit, failures_per_minute=settings.AUTH_FAILURES_PER_MINUTE)
        await stack.enter_async_context(sweeping(budget, auth_guard))
        gateway = Gateway(
            settings=settings,
            secret=base.secret,
            metrics=metrics,
            registry=registry,
            policy=base.policy,
            limits=session_limits(settings),
            audit=base.audit,
            auth_guard=auth_guard,
            budget=budget,
            webhooks=webhooks,
            link_codes=LinkCodes(ledger.redis, settings.LINK_CODE_TTL_SECONDS),
            ledger=ledger,
            upstream=upstream,
            interims=interims,
            presence=presence,
            fleet=fleet,
            kept=kept,
            pings=_pings(settings, ledger, upstream, budget, metrics),
        )
        events.subscribe(AlertDispatcher(gateway).on_alert)
        yield gateway


def _hold_data_dir(settings: Settings) -> Any:
    """One gateway per DATA_DIR: its audit chain and embedded Redis are not shareable."""
    data_dir = settings.data_dir
    return lockfile.hold(
        data_dir / "gateway.lock",
        f"DATA_DIR {data_dir} is in use by another gateway; give each its own DATA_DIR",
    )


def _budget(base: Foundation, ledger: LedgerLink, events: AlertEvents) -> BudgetService:
    settings = base.settings
    budget = BudgetService(
        base.policy,
        ledger.ledger,
        mode=settings.BUDGET_ENFORCEMENT_MODE,
        metrics=base.metrics,
        lease_seconds=settings.BUDGET_LEASE_SECONDS,
        journal=CommitJournal(settings.data_dir / JOURNAL_FILE),
        events=events,
    )
    if ledger.ledger is not None:
        budget.start_replay()
    return budget


def _pings(
    settings: Settings,
    ledger: LedgerLink,
    upstream: Upstream,
    budget: BudgetService,
    metrics: Metrics,
) -> Pings:
    """The readiness checks, in start order."""
    pings = Pings()

    async def redis() -> dict[str, Any]:
        return await ledger.check(budget.journal, metrics)

    async def whisper() -> dict[str, Any]:
        return upstream.check(settings)

    async def budget_policy() -> dict[str, Any]:
        return {
            "status": "ok",
            "path": budget.policy.path,
            "enforcement_mode": settings.BUDGET_ENFORCEMENT_MODE,
        }

    pings.register("redis", redis)
    pings.register("whisper", whisper)
    pings.register("budget_policy", budget_policy)
    return pings


def _saturation(settings: Settings) -> Saturation:
    """When the process stops admitting streams (docs/Scaling.md, "Admission")."""
    enter, reopen = settings.admission_lag_ms
    return Saturation(
        SaturationLimits(
            enter_seconds=enter / 1000,
            leave_seconds=reopen / 1000,
            hold_seconds=settings.ADMISSION_HOLD_SECONDS,
        )
    )


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


def check_default_model_priced(settings: Settings, policy: Policy) -> None:
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


def check_interim_model_priced(settings: Settings, policy: Policy) -> None:
    """Interim decodes are metered like windows: with interims on, their model is priced."""
    if settings.interim_provider == "off" or settings.INTERIM_MODEL in policy.pricing.models:
        return
    raise ConfigurationError(
        f"INTERIM_MODEL {settings.INTERIM_MODEL!r} has no price in the budget policy "
        f"{policy.path}: add it to pricing_usd_per_minute (0 for on-premise compute) or set "
        "INTERIM_PROVIDER=off"
    )
