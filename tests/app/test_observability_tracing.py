"""Optional tracing: off by default; when on, HTTP and per-window spans and trace ids in logs."""

from __future__ import annotations

import sys

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from gateway.auth.tokens import mint
from gateway.errors import ConfigurationError
from gateway.observability import tracing
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import SECRET, GatewayServer, http_json, stream_and_close, token


async def test_off_by_default(gateway: GatewayServer) -> None:
    assert tracing._tracer is None
    with tracing.span("nothing"):
        pass


async def test_spans_for_http_and_windows(make_gateway: GatewayFactory) -> None:
    exporter = InMemorySpanExporter()
    server = await make_gateway(OTEL_TRACING_ENABLED="true", app_kwargs={"span_exporter": exporter})
    jwt = token()
    await stream_and_close(server, tone(440, 1.0), jwt=jwt, via="query")
    teacher = mint(SECRET, school_id="s-1", role="teacher")
    status, _ = await http_json("GET", f"{server.http}/api/v1/schools/s-1/budget", teacher)
    assert status == 200
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    window = by_name["stt.window"]
    assert window.attributes["stt.window.seq"] == 0
    assert window.attributes["stt.school_id"] == "s-1"
    for child in ("budget.reserve", "stt.upstream"):
        assert by_name[child].parent is not None
        assert by_name[child].parent.span_id == window.context.span_id
        assert by_name[child].context.trace_id == window.context.trace_id
    # The charge is taken when the Transcript goes out, with the session's state.
    assert by_name["budget.commit"].attributes["stt.windows"] >= 1
    http = {s.name: s for s in spans if s.kind.name == "SERVER"}
    budget = http["GET /api/v1/schools/{school_id}/budget"]
    assert budget.attributes["http.response.status_code"] == 200
    assert not any("listen" in name for name in http)  # streams are not traced as requests
    flat = repr([(s.name, dict(s.attributes or {})) for s in spans])
    assert jwt not in flat and teacher not in flat and "[simulated]" not in flat
    await server.stop()
    assert tracing._tracer is None


async def test_incoming_traceparent_is_continued(make_gateway: GatewayFactory) -> None:
    import aiohttp

    exporter = InMemorySpanExporter()
    server = await make_gateway(OTEL_TRACING_ENABLED="true", app_kwargs={"span_exporter": exporter})
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.http}/api/v1/health", headers={"traceparent": parent}) as r,
    ):
        assert r.status == 200
    [span] = [s for s in exporter.get_finished_spans() if s.name == "GET /api/v1/health"]
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    await server.stop()


def test_log_lines_carry_trace_ids() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = tracing.configure(True, "test", InMemorySpanExporter())
    try:
        with capture_logs(processors=[tracing.add_trace_ids]) as logs, tracing.span("work"):
            structlog.get_logger().warning("inside")
        structlog.get_logger().warning("outside")
    finally:
        tracing.shutdown(provider)
    assert len(logs[0]["trace_id"]) == 32 and len(logs[0]["span_id"]) == 16


def test_missing_extra_is_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigurationError, match="OTEL_TRACING_ENABLED"):
        tracing.configure(True, "test")
