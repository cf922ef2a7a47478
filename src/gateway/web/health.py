"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import __version__
from gateway.budget.service import LEDGER_ERRORS
from gateway.web import openapi
from gateway.web.budget_gauges import refresh_budget_gauges
from gateway.web.state import GATEWAY, Gateway


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


def whisper_check(gateway: Gateway) -> dict[str, Any]:
    service = gateway.service
    if service is None:
        return {
            "status": "down",
            "circuit": "closed",
            "upstream": gateway.upstream_url,
            "last_success_at": None,
            "last_error": "not started",
            "rate_limited_ratio_5m": 0.0,
        }
    state = service.guard.state
    status = "ok" if state == "closed" else "down"
    check: dict[str, Any] = {
        "status": status,
        "provider": gateway.provider,
        "model": gateway.settings.upstream_model_label,
        "circuit": state,
        "upstream": gateway.upstream_url,
        "last_success_at": service.last_success_at.isoformat() if service.last_success_at else None,
        "last_error": service.last_error,
        "rate_limited_ratio_5m": round(service.stats.rate_limited_ratio(300.0), 4),
        "window_seconds": service.window_seconds,
    }
    if service.credentials_refused:
        check["status"] = "rejected"
        check["reason"] = service.credentials_refused
    local = gateway.local
    if local is not None:
        check["device"], check["workers"] = local.device, local.workers
        if not local.loaded.is_set():
            check["status"] = "loading"
            check["reason"] = local.load_error or "the local model is loading"
    if gateway.simulated:
        check["simulated"] = True
        check["status"] = "simulated" if check["status"] == "ok" else check["status"]
    return check


async def redis_check(gateway: Gateway) -> dict[str, Any]:
    if gateway.redis is None:
        return {"status": "disabled", "mode": gateway.redis_mode, "latency_ms": None}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(1.0):
            await gateway.redis.ping()
    except LEDGER_ERRORS as exc:
        return {
            "status": "down",
            "mode": gateway.redis_mode,
            "latency_ms": None,
            "error": type(exc).__name__,
        }
    check: dict[str, Any] = {
        "status": "ok",
        "mode": gateway.redis_mode,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if gateway.embedded is not None:
        check["restarts"] = gateway.embedded.restarts
    journal = gateway.budget.journal
    if journal is not None and len(journal):
        check["charges_owed"] = len(journal)
    return check


async def ready(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    settings = gateway.settings
    whisper = whisper_check(gateway)
    redis_state = await redis_check(gateway)
    checks: dict[str, Any] = {
        "redis": redis_state,
        "whisper": whisper,
        "budget_policy": {
            "status": "ok",
            "path": gateway.policy.path,
            "enforcement_mode": settings.BUDGET_ENFORCEMENT_MODE,
        },
    }
    draining = gateway.registry.draining
    whisper_healthy = (
        whisper["status"] in ("ok", "simulated")
        and whisper["circuit"] == "closed"
        and gateway.service is not None
        and not gateway.simulated
        and (settings.OPENAI_API_KEY is not None or gateway.provider == "local")
    )
    not_ready = (
        draining
        or whisper["status"] == "loading"
        or (redis_state["status"] == "down" and settings.BUDGET_ENFORCEMENT_MODE == "strict")
    )
    if not_ready:
        status, code = "not_ready", 503
    elif not whisper_healthy:
        status = "degraded"
        code = 503 if settings.READY_REQUIRES_WHISPER else 200
    else:
        status, code = "ready", 200
    body: dict[str, Any] = {"status": status, "draining": draining, "checks": checks}
    if gateway.simulated:
        body["simulated"] = True
    return web.json_response(body, status=code)


async def metrics(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    await refresh_budget_gauges(gateway)
    return web.Response(
        body=gateway.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def openapi_document(_request: web.Request) -> web.Response:
    return web.json_response(openapi.document())
