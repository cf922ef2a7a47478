"""Health, readiness (with Whisper's state), metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import GatewayServer, connect, open_stream, stream_and_close, token


async def _get(server: GatewayServer, path: str) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as session, session.get(server.http + path) as r:
        text = await r.text()
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body, text


async def test_health(gateway: GatewayServer) -> None:
    status, body, _ = await _get(gateway, "/api/v1/health")
    assert (status, body) == (200, {"status": "ok"})


async def test_ready_when_whisper_is_healthy(gateway: GatewayServer) -> None:
    status, body, _ = await _get(gateway, "/api/v1/ready")
    assert status == 200 and body["status"] == "ready" and body["draining"] is False
    whisper = body["checks"]["whisper"]
    assert whisper["status"] == "ok" and whisper["circuit"] == "closed"
    assert whisper["upstream"] == gateway.fake.url  # type: ignore[attr-defined]
    assert set(whisper) >= {"last_success_at", "last_error", "rate_limited_ratio_5m"}


@pytest.mark.parametrize("requires", [False, True])
async def test_ready_degraded_when_circuit_open(
    make_gateway: GatewayFactory, requires: bool
) -> None:
    server = await make_gateway(
        BREAKER_FAIL_MAX=1, BREAKER_RESET_SECONDS=30, READY_REQUIRES_WHISPER=str(requires).lower()
    )
    server.fake.behaviour.mode = "500"
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "Finalize"})
    service = server.state.service
    assert service is not None
    for _ in range(200):
        if service.guard.state == "open":
            break
        await asyncio.sleep(0.02)
    status, body, _ = await _get(server, "/api/v1/ready")
    assert body["status"] == "degraded"
    assert status == (503 if requires else 200)
    whisper = body["checks"]["whisper"]
    assert whisper["circuit"] == "open" and whisper["status"] == "down"
    assert whisper["last_error"].startswith("server_error")
    await stream.close()


async def test_ready_not_ready_while_draining(gateway: GatewayServer) -> None:
    gateway.state.registry.draining = True
    status, body, _ = await _get(gateway, "/api/v1/ready")
    assert status == 503 and body["status"] == "not_ready" and body["draining"] is True
    stream = await connect(gateway, token())
    error = await stream.next()
    assert error["code"] == "OVERLOADED"
    await stream.collect()
    assert stream.close_code == 1013
    await stream.close()


async def test_metrics_exposition(gateway: GatewayServer) -> None:
    await stream_and_close(gateway, tone(440, 1.0))
    await _get(gateway, "/api/v1/health")
    status, _, text = await _get(gateway, "/metrics")
    assert status == 200
    for name in (
        "stt_sessions_active",
        "stt_sessions_total",
        "stt_sessions_ended_total",
        "stt_stream_restarts_total",
        "stt_audio_received_seconds_total",
        "stt_pending_audio_seconds",
        "stt_window_seconds",
        "stt_windows_total",
        "stt_transcript_latency_seconds_bucket",
        "stt_upstream_requests_total",
        "stt_upstream_request_duration_seconds_bucket",
        "stt_upstream_circuit_state",
        "stt_upstream_circuit_transitions_total",
        "stt_upstream_calls_not_permitted_total",
        "stt_audio_billed_seconds_total",
        "stt_cost_usd_total",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "stt_build_info",
        "process_resident_memory_bytes",
    ):
        assert f"\n{name}" in text, name
    assert 'stt_windows_total{status="ok"} 1.0' in text
    assert 'stt_upstream_circuit_state{state="closed"} 1.0' in text
    assert 'stt_sessions_total{outcome="accepted"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/v1/listen",status="101"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/api/v1/listen"}' not in text
    for forbidden in ("session_id", "group_id", "[simulated]"):
        assert forbidden not in text


async def test_http_metrics_use_route_templates(gateway: GatewayServer) -> None:
    await _get(gateway, "/no/such/path")
    await _get(gateway, "/api/v1/health")
    _, _, text = await _get(gateway, "/metrics")
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/v1/health",status="200"} 1.0' in text


async def test_openapi_document(gateway: GatewayServer) -> None:
    from openapi_spec_validator import validate

    status, body, _ = await _get(gateway, "/api/v1/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.1")
    validate(body)
    for path in (
        "/api/v1/ready",
        "/api/v1/tokens",
        "/api/v1/schools/{school_id}/budget",
        "/api/v1/schools/{school_id}/budget/usage",
        "/api/v1/budget/usage",
        "/api/v1/schools/{school_id}/budget/alerts",
        "/v1/audio/transcriptions",
    ):
        assert path in body["paths"], path
    routes = {
        r.resource.canonical
        for r in gateway.app.router.routes()  # type: ignore[union-attr]
        if r.resource is not None
    }
    assert routes <= set(body["paths"]), routes - set(body["paths"])
    assert set(body["paths"]) <= routes, set(body["paths"]) - routes
    from gateway.web.api.openapi import request_schemas

    schemas = body["components"]["schemas"]
    for name, schema in request_schemas().items():
        assert schemas[name] == schema, name
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for ops in body["paths"].values()
        for op in ops.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    assert bodies == set(request_schemas())
