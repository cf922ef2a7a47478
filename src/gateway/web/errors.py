"""The HTTP error envelope of api.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
