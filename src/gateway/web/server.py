"""The HTTP server around the application: connection limits and aiohttp's own errors.

- Every connection must complete a request's headers within
  ``HTTP_KEEPALIVE_SECONDS`` of opening or of its previous response, and idle
  keep-alive connections close after as long (slow-header clients cannot pile up).
- Requests aiohttp itself refuses before any handler runs (a header over the
  limits, a NUL byte, a malformed request line) answer with the JSON error
  envelope — never with the parser's message, which can quote request bytes —
  and are logged as one structured line with the status and the error's type.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.observability.logging import get_logger
from gateway.settings import Settings
from gateway.web.middleware import STATUS_CODES

log = get_logger("gateway.http")


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        emit = log.error if status >= 500 else log.warning
        emit("http.refused_by_parser", status=status, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        body = {
            "error": {
                "code": STATUS_CODES.get(status, "BAD_REQUEST"),
                "message": _phrase(status),
                "request_id": uuid.uuid4().hex,
            }
        }
        response = web.json_response(body, status=status)
        response.force_close()
        return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "bad request"


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``AppRunner`` whose connections use the handler above."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=settings.HTTP_KEEPALIVE_SECONDS,
            **kwargs,
        )

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state; only the connection handler class differs
        return server
