"""CORS for the HTTP API: a platform's own dashboard may call the budget API from a browser.

Only origins in ``ALLOWED_ORIGINS`` (any in dev's ``*``) get CORS headers; a
preflight from any other origin is refused with 403. Requests without an
``Origin`` header (servers, curl, the gateway's own pages) are untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.web.errors import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIXES = ("/api/", "/v1/")
ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE_SECONDS = "600"


def origin_allowed(allowed: tuple[str, ...] | None, origin: str | None) -> bool:
    """``allowed`` is ``None`` for any origin (``*``)."""
    return origin is None or allowed is None or origin.rstrip("/") in allowed


def make_cors_middleware(allowed: tuple[str, ...] | None) -> Middleware:
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(API_PREFIXES):
            return await handler(request)
        permitted = origin_allowed(allowed, origin)
        preflight = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        if preflight:
            if not permitted:
                return json_error(request, 403, "FORBIDDEN", "origin not allowed")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": MAX_AGE_SECONDS,
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        if permitted and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers["Vary"] = "Origin"
        return response

    return cors
