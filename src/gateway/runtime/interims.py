"""The interim transcriber as a service (``INTERIM_PROVIDER``): the local model (the final
one when it is the same, else its own, loaded in the background), any OpenAI-compatible
server at ``INTERIM_BASE_URL``, or none."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.budget.service import BudgetService
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.runtime.background import cancelled
from gateway.runtime.upstream import Upstream, load_local, local_transcriber
from gateway.settings import Settings
from gateway.stream.saturation import Saturation
from gateway.stt.aiohttp_transcriber import AiohttpTranscriber
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.transcriber import Transcriber
from gateway.window.interim import InterimDecoder

log = get_logger("gateway.interim")

#: Interim decodes in flight at once on a remote interim server (a GPU serves many).
REMOTE_IN_FLIGHT = 16
#: An interim later than this is no live word: give it up (a window's final has its own).
REMOTE_TIMEOUT_SECONDS = 5.0


@asynccontextmanager
async def open_interims(
    settings: Settings,
    metrics: Metrics,
    budget: BudgetService,
    upstream: Upstream,
    saturation: Saturation | None = None,
) -> AsyncIterator[InterimDecoder | None]:
    """The interim decoder (None when off); ``saturation``: while the process is saturated,
    interims are skipped (the first thing it gives up)."""
    provider = settings.interim_provider
    if provider == "off":
        yield None
        return
    async with contextlib.AsyncExitStack() as stack:
        transcriber: Transcriber
        if provider == "openai":
            assert settings.INTERIM_BASE_URL is not None
            transcriber = AiohttpTranscriber(
                api_key=settings.INTERIM_API_KEY or "none",
                base_url=settings.INTERIM_BASE_URL,
                timeout=min(REMOTE_TIMEOUT_SECONDS, settings.STT_REQUEST_TIMEOUT_SECONDS),
            )
            stack.push_async_callback(transcriber.close)
            decoder = InterimDecoder(
                transcriber, budget, metrics, model=settings.INTERIM_MODEL,
                max_in_flight=REMOTE_IN_FLIGHT, saturation=saturation,
            )  # fmt: skip
        else:
            local = _shared_local(settings, upstream)
            if local is None:
                local = local_transcriber(settings, settings.INTERIM_MODEL)
                stack.push_async_callback(local.close)
                stack.push_async_callback(cancelled, asyncio.create_task(load_local(local)))
            decoder = InterimDecoder(
                local, budget, metrics, model=settings.INTERIM_MODEL,
                max_in_flight=local.workers, finals_waiting=lambda: local.busy,
                saturation=saturation,
            )  # fmt: skip
        log.info("interim.ready", provider=provider, model=settings.INTERIM_MODEL)
        yield decoder


def _shared_local(settings: Settings, upstream: Upstream) -> LocalTranscriber | None:
    """The final transcriber's model, when interims use the same one."""
    local = upstream.local
    if local is not None and local.model_name == settings.INTERIM_MODEL:
        return local
    return None
