"""Reading a request body within ``HTTP_BODY_TIMEOUT_SECONDS``.

Once a request's headers are in, its body could otherwise trickle in forever (a
byte every few seconds holds a connection and a handler). Every handler that
reads a body does it inside :func:`body_deadline`: too slow → 408 and the
connection is closed; a client that resets mid-body is one info line, not a
traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.errors import BodyTimeout, ClientGone
from gateway.observability.logging import get_logger
from gateway.web.keys import GATEWAY

log = get_logger("gateway.http")


@asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    seconds = request.app[GATEWAY].settings.HTTP_BODY_TIMEOUT_SECONDS
    log.debug("http.reading_body", method=request.method)
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        log.info("http.body_timeout", method=request.method, seconds=seconds)
        raise BodyTimeout(seconds) from None
    except ConnectionResetError:
        log.info("http.client_reset", method=request.method)
        raise ClientGone() from None
