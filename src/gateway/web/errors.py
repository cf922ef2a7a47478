"""The one place a :class:`GatewayError` becomes what a client sees: the API's JSON
envelope (api.md), a WebSocket close frame (protocol.md), or an OpenAI-shaped error
(the passthrough, for OpenAI clients)."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateway.errors import (
    BudgetRefused,
    BudgetUnavailable,
    GatewayError,
    HttpError,
    InvalidToken,
    TooManyFailures,
    UpstreamError,
)

REQUEST_ID_KEY = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    return str(request.get(REQUEST_ID_KEY, ""))


def json_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id(request)}
    if details is not None:
        error["details"] = details
    return web.json_response({"error": error}, status=status, headers=headers)


def _headers(exc: GatewayError) -> dict[str, str] | None:
    if isinstance(exc, HttpError) and exc.headers:
        return exc.headers
    if exc.retry_after is not None:
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return None


def _closing(response: web.Response) -> web.Response:
    """An answer that says ``Connection: close`` (a body cut short) also closes it."""
    if response.headers.get("Connection") == "close":
        response.force_close()
    return response


def error_response(request: web.Request, exc: GatewayError) -> web.Response:
    """The API's error envelope for ``exc``."""
    details = exc.details if isinstance(exc, HttpError) else None
    headers = _headers(exc)
    return _closing(
        json_error(
            request, exc.http_status, exc.code, exc.message, details=details, headers=headers
        )
    )


def close_frame(exc: GatewayError) -> tuple[int, bytes]:
    """The WebSocket close code and reason for ``exc`` (sent after its ``Error``)."""
    return exc.close_code, exc.code.encode()


def openai_error(
    status: int,
    message: str,
    *,
    code: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status=status,
        headers=headers,
    )


def openai_error_for(exc: GatewayError) -> web.Response:
    """``exc`` as an OpenAI client expects it: a budget refusal is a 429
    ``insufficient_quota`` (what such clients already handle), a bad token an
    ``invalid_api_key``, the upstream's failures ``server_error``s."""
    headers = _headers(exc)
    if isinstance(exc, TooManyFailures):
        return openai_error(
            429, exc.message, code="rate_limit_exceeded", kind="requests", headers=headers
        )
    if isinstance(exc, InvalidToken):
        return openai_error(401, exc.message, code="invalid_api_key")
    if isinstance(exc, BudgetRefused):
        return openai_error(
            429,
            "the school's daily transcription budget is used up",
            code=exc.code,
            kind="insufficient_quota",
        )
    if isinstance(exc, BudgetUnavailable):
        return openai_error(
            503, "the budget ledger is unreachable", code=exc.code, kind="server_error"
        )
    if isinstance(exc, UpstreamError):
        return openai_error(exc.http_status, exc.message, code=exc.drop_reason, kind="server_error")
    return _closing(openai_error(exc.http_status, exc.message, code=exc.code, headers=headers))
