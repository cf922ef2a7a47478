"""The aiohttp application: the composition root entered in one cleanup context, the
middleware and the routes of each room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.runtime.root import Foundation, open_gateway, prepare
from gateway.settings import Settings
from gateway.web.api import alerts, health, sessions, settings, tokens, usage
from gateway.web.cors import make_cors_middleware
from gateway.web.keys import GATEWAY
from gateway.web.listen import handler as listen
from gateway.web.middleware import make_middleware
from gateway.web.openai import transcriptions
from gateway.web.pages import routes as pages

#: Upload limit for multipart transcription requests; JSON bodies are limited to 1 MiB.
CLIENT_MAX_SIZE = 26 * 1024 * 1024


def create_app(config: Settings, *, span_exporter: Any = None) -> web.Application:
    """The gateway application; a bad configuration raises ConfigurationError here, before
    anything starts. ``span_exporter`` replaces the OTLP exporter (tests)."""
    base = prepare(config, span_exporter=span_exporter)
    app = web.Application(
        middlewares=[
            make_middleware(base.metrics),
            make_cors_middleware(config.allowed_origins),
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app.cleanup_ctx.append(_running(base))
    app.on_shutdown.append(_drain)
    pages.add_routes(app.router, health.index)
    health.add_routes(app.router)
    app.router.add_get("/api/v1/listen", listen.listen)
    for module in (tokens, settings, usage, alerts, sessions):
        module.add_routes(app.router)
    app.router.add_post("/v1/audio/transcriptions", transcriptions.transcriptions)
    return app


def _running(base: Foundation) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_gateway(base) as gateway:
            app[GATEWAY] = gateway
            yield

    return context


async def _drain(app: web.Application) -> None:
    gateway = app[GATEWAY]
    await gateway.registry.drain(gateway.settings.SHUTDOWN_GRACE_SECONDS)
