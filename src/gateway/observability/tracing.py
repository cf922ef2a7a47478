"""Optional OpenTelemetry tracing: off by default, ``OTEL_TRACING_ENABLED=true`` to turn on.

When on, every HTTP API request gets a server span (named by its route
template, continuing an incoming W3C ``traceparent``), every window gets an
``stt.window`` span with children for the budget reservation, the upstream
call and the commit, and every log line written inside a span carries
``trace_id`` and ``span_id``. Spans go to the
OTLP/HTTP exporter configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables. The streaming route is not traced as an HTTP request (a stream
lasts a lesson; its windows have their own spans); span attributes never hold
URLs, text, audio or tokens.

The official aiohttp-server instrumentation is not used: its middleware
depends on globals that only its instrumentor sets, and the instrumentor
replaces ``aiohttp.web.Application`` for the whole process.

The packages are an extra (``pip install 'stt-gateway[tracing]'``); with
tracing off nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from gateway.errors import ConfigurationError

_tracer: Any = None
UNTRACED_ROUTES = frozenset({"/api/v1/listen", "/metrics"})


def configure(enabled: bool, service_name: str, exporter: Any = None) -> Any:
    """Set up tracing; returns the tracer provider, or None when tracing is off."""
    global _tracer
    if not enabled:
        _tracer = None
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise ConfigurationError(
            "invalid configuration: OTEL_TRACING_ENABLED=true needs the tracing extra "
            "(pip install 'stt-gateway[tracing]')"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("gateway")
    return provider


def shutdown(provider: Any) -> None:
    global _tracer
    _tracer = None
    if provider is not None:
        provider.shutdown()


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, str | int | float | bool] | None = None
) -> Iterator[None]:
    """A span named ``name`` around the block, or nothing when tracing is off."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


@contextlib.contextmanager
def server_span(method: str, route: str, headers: Mapping[str, str]) -> Iterator[Any]:
    """A SERVER span for one HTTP request, continuing an incoming ``traceparent``.

    Yields a function that records the response status (a no-op when tracing
    is off). Only the method and the route template are recorded: never the
    URL, whose query may carry a token.
    """
    if _tracer is None or route in UNTRACED_ROUTES:
        yield _no_status
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind, Status, StatusCode

    with _tracer.start_as_current_span(
        f"{method} {route}",
        context=extract(dict(headers)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route},
    ) as current:

        def record(status: int) -> None:
            current.set_attribute("http.response.status_code", status)
            if status >= 500:
                current.set_status(Status(StatusCode.ERROR))

        yield record


def _no_status(_status: int) -> None:
    pass


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ids, when tracing is on and a span is active."""
    if _tracer is not None:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict["trace_id"] = format(context.trace_id, "032x")
            event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict
