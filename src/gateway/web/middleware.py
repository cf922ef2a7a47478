"""Request id, HTTP metrics and the error envelope for every response."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from gateway.observability import tracing
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.web.errors import REQUEST_ID_KEY, json_error

log = get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    503: "UNAVAILABLE",
}


#: Headers of aiohttp's own HTTP errors that the envelope keeps (405 names the allowed methods).
_KEPT_HEADERS = ("Allow", "Retry-After")


def _route(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    canonical = getattr(resource, "canonical", None)
    return str(canonical) if canonical else "unmatched"


async def _handle(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    """The handler's response, or the error envelope for what it raised."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = STATUS_CODES.get(exc.status, "HTTP_ERROR")
        message = exc.reason if exc.status != 404 else "no such route"
        kept = {k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
        return json_error(request, exc.status, code, message, headers=kept or None)
    except HttpProcessingError as exc:  # a malformed body part, found while a handler reads it
        log.warning("http.bad_body", route=route, error=type(exc).__name__)
        return json_error(request, 400, "BAD_REQUEST", "malformed request body")
    except Exception:
        log.exception("http.unhandled_error", route=route, method=request.method)
        return json_error(request, 500, "INTERNAL", "internal error")


def make_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        request[REQUEST_ID_KEY] = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        route = _route(request)
        try:
            with tracing.server_span(request.method, route, request.headers) as record_status:
                response = await _handle(request, handler, route)
                record_status(response.status)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
            # Browsers must take every answer as the type it says (no JSON run as a page).
            response.headers["X-Content-Type-Options"] = "nosniff"
        if isinstance(response, web.WebSocketResponse):
            # A stream's duration is not request latency: count it, do not time it.
            status = "101" if response.prepared else str(response.status)
            metrics.http_requests.labels(method=request.method, route=route, status=status).inc()
            return response
        metrics.http_requests.labels(
            method=request.method, route=route, status=str(response.status)
        ).inc()
        metrics.http_duration.labels(method=request.method, route=route).observe(
            time.perf_counter() - started
        )
        return response

    return middleware
