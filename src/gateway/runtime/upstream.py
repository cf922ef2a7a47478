"""Whisper as a service: the transcriber (OpenAI, local or simulated), its guard and
retries, and the window processor — started, stopped, and able to say how they are (the
readiness check)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from gateway import __version__
from gateway.budget.service import BudgetService
from gateway.errors import ConfigurationError
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.runtime.background import cancelled
from gateway.settings import Settings
from gateway.simulated import whisper as simulated_whisper
from gateway.stream.saturation import Saturation
from gateway.stt.aiohttp_transcriber import AiohttpTranscriber
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.openai_transcriber import OpenAITranscriber
from gateway.stt.rpm import RpmLimiter
from gateway.stt.service import SttService, UpstreamConfig
from gateway.stt.transcriber import Transcriber
from gateway.window.pipeline import WindowProcessor

log = get_logger("gateway.upstream")

SIMULATED_API_KEY = "simulated"


@dataclass(frozen=True, slots=True)
class Upstream:
    service: SttService
    processor: WindowProcessor
    #: Where requests go: a URL, or ``local:<model>``.
    url: str
    provider: str
    simulated: bool
    #: The in-process model, when ``provider`` is ``local``.
    local: LocalTranscriber | None = None

    def check(self, settings: Settings) -> dict[str, Any]:
        """The readiness check: the circuit, the last success and error, the model."""
        service = self.service
        state = service.guard.state
        check: dict[str, Any] = {
            "status": "ok" if state == "closed" else "down",
            "provider": self.provider,
            "model": settings.upstream_model_label,
            "circuit": state,
            "upstream": self.url,
            "last_success_at": (
                service.last_success_at.isoformat() if service.last_success_at else None
            ),
            "last_error": service.last_error,
            "rate_limited_ratio_5m": round(service.stats.rate_limited_ratio(300.0), 4),
            "window_seconds": service.window_seconds,
        }
        if service.credentials_refused:
            check["status"] = "rejected"
            check["reason"] = service.credentials_refused
        local = self.local
        if local is not None:
            check["device"], check["workers"] = local.device, local.workers
            if not local.loaded.is_set():
                check["status"] = "loading"
                check["reason"] = local.load_error or "the local model is loading"
        if self.simulated:
            check["simulated"] = True
            check["status"] = "simulated" if check["status"] == "ok" else check["status"]
        return check


def local_transcriber(settings: Settings, model: str | None = None) -> LocalTranscriber:
    """The in-process model ``model`` (default ``LOCAL_WHISPER_MODEL``), not yet loaded."""
    transcriber = LocalTranscriber(
        model=model or settings.LOCAL_WHISPER_MODEL,
        device=settings.LOCAL_WHISPER_DEVICE,
        compute_type=settings.LOCAL_WHISPER_COMPUTE_TYPE,
        workers=settings.LOCAL_WHISPER_WORKERS,
    )
    problem = transcriber.model_problem()
    if problem:
        raise ConfigurationError(problem)
    return transcriber


async def load_local(transcriber: LocalTranscriber) -> None:
    try:
        await transcriber.load()
    except ConfigurationError as exc:
        log.error("local_whisper.load_failed", problem=str(exc))


@asynccontextmanager
async def open_upstream(
    settings: Settings,
    metrics: Metrics,
    budget: BudgetService,
    redis: aioredis.Redis | None,
    saturation: Saturation | None = None,
) -> AsyncIterator[Upstream]:
    """Start the transcriber (loading a local model in the background, or the simulated
    Whisper), the service and the window processor; at the end, stop them, awaiting the
    loader."""
    async with contextlib.AsyncExitStack() as stack:
        local: LocalTranscriber | None = None
        transcriber: Transcriber
        if settings.provider == "local":
            url = f"local:{settings.LOCAL_WHISPER_MODEL}"
            local = transcriber = local_transcriber(settings)
            loader = asyncio.create_task(load_local(local))
            stack.push_async_callback(cancelled, loader)
        else:
            url = settings.upstream_url
            if settings.simulated_upstream:
                runner, url = await _start_simulated()
                stack.push_async_callback(runner.cleanup)
            transcriber = _remote(settings, url)
        rpm = (
            RpmLimiter(redis, settings.OPENAI_RPM_LIMIT)
            if settings.OPENAI_RPM_LIMIT and redis is not None
            else None
        )
        service = _service(settings, transcriber, metrics, rpm)
        stack.push_async_callback(service.close)
        yield Upstream(
            service=service,
            processor=WindowProcessor(service, budget, metrics, saturation),
            url=url,
            provider=settings.provider,
            simulated=settings.simulated_upstream,
            local=local,
        )


async def _start_simulated() -> tuple[web.AppRunner, str]:
    runner, url = await simulated_whisper.start(
        simulated_whisper.FakeWhisper(simulated_whisper.Behaviour(latency_ms=300, jitter_ms=100))
    )
    log.warning(
        "upstream.simulated",
        upstream=url,
        message="no OPENAI_API_KEY: using the simulated Whisper; transcripts are synthetic",
    )
    return runner, url


def _remote(settings: Settings, url: str) -> Transcriber:
    """The OpenAI wire client (the lean one, or the official SDK) for ``url``."""
    real_key = None if settings.simulated_upstream else settings.OPENAI_API_KEY
    api_key = real_key or SIMULATED_API_KEY
    client = OpenAITranscriber if settings.UPSTREAM_CLIENT == "openai-sdk" else AiohttpTranscriber
    return client(api_key=api_key, base_url=url, timeout=settings.STT_REQUEST_TIMEOUT_SECONDS)


def _service(
    settings: Settings, transcriber: Transcriber, metrics: Metrics, rpm: RpmLimiter | None
) -> SttService:
    metrics.upstream_info.labels(
        provider=settings.provider, model=settings.upstream_model_label
    ).set(1)
    return SttService(
        transcriber,
        UpstreamConfig(
            max_concurrency=settings.STT_MAX_CONCURRENCY,
            max_retries=settings.STT_MAX_RETRIES,
            fail_max=settings.BREAKER_FAIL_MAX,
            reset_seconds=settings.BREAKER_RESET_SECONDS,
            window_seconds=settings.STT_WINDOW_SECONDS,
            window_max_seconds=settings.STT_WINDOW_MAX_SECONDS,
        ),
        metrics,
        rpm=rpm,
    )


def announce(settings: Settings, url: str) -> None:
    """``gateway.started``: logged once the gateway listens (never before a refused port)."""
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
