"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import __version__
from gateway.runtime.gateway import Gateway
from gateway.web.api import openapi
from gateway.web.api.budget_gauges import refresh_budget_gauges
from gateway.web.keys import GATEWAY


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


#: An embedded Redis down longer than this (its supervisor cannot bring it back) fails liveness,
#: so an orchestrator restarts the gateway.
EMBEDDED_DOWN_LIVENESS_SECONDS = 60.0


async def index(request: web.Request) -> web.Response:
    """``/``: what this is, which Whisper it uses, and where to go next."""
    gateway = _gateway(request)
    provider = gateway.provider
    return web.json_response(
        {
            "service": "stt-gateway",
            "version": __version__,
            "provider": provider,
            "model": gateway.settings.upstream_model_label,
            "endpoints": {
                "listen": "/api/v1/listen",
                "health": "/api/v1/health",
                "ready": "/api/v1/ready",
                "metrics": "/metrics",
                "openapi": "/api/v1/openapi.json",
            },
        }
    )


async def health(request: web.Request) -> web.Response:
    embedded = _gateway(request).embedded
    if embedded is not None and embedded.down_for > EMBEDDED_DOWN_LIVENESS_SECONDS:
        return web.json_response(
            {
                "status": "failing",
                "reason": f"the embedded Redis has been down for {embedded.down_for:.0f} s",
            },
            status=503,
        )
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    settings = gateway.settings
    checks = await gateway.pings.check()
    whisper, redis_state = checks["whisper"], checks["redis"]
    draining = gateway.registry.draining
    whisper_healthy = (
        whisper["status"] in ("ok", "simulated")
        and whisper["circuit"] == "closed"
        and not gateway.simulated
        and (settings.OPENAI_API_KEY is not None or gateway.provider == "local")
    )
    not_ready = (
        draining
        or whisper["status"] == "loading"
        or (redis_state["status"] == "down" and settings.BUDGET_ENFORCEMENT_MODE == "strict")
    )
    saturation = gateway.registry.saturation
    closed = gateway.registry.admission_closed()
    if not_ready:
        status, code = "not_ready", 503
    elif closed:  # new connections to other replicas; admitted streams go on
        status, code = "saturated", 503
    elif not whisper_healthy:
        status = "degraded"
        code = 503 if settings.READY_REQUIRES_WHISPER else 200
    else:
        status, code = "ready", 200
    checks["admission"] = {
        "status": "saturated" if closed else "open",
        "event_loop_lag_ms": round(saturation.lag * 1000, 1),
        "streams": len(gateway.registry),
    }
    body: dict[str, Any] = {"status": status, "draining": draining, "checks": checks}
    if gateway.simulated:
        body["simulated"] = True
    return web.json_response(body, status=code)


async def metrics(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    await gateway.ledger.check(gateway.budget.journal, gateway.metrics)
    await refresh_budget_gauges(gateway)
    return web.Response(
        body=gateway.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def openapi_document(_request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/health", health)
    router.add_get("/api/v1/ready", ready)
    router.add_get("/metrics", metrics)
    router.add_get("/api/v1/openapi.json", openapi_document)
