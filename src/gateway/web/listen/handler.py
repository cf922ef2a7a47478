"""``GET /api/v1/listen``: the handshake, then a :class:`StreamSession`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import WSCloseCode, web

from gateway.auth.tokens import Claims
from gateway.errors import (
    FrameTooLarge,
    InvalidToken,
    StreamError,
    TooManyFailures,
    Unauthorized,
)
from gateway.observability.audit import actor
from gateway.observability.logging import get_logger
from gateway.runtime.gateway import Gateway
from gateway.stream import protocol
from gateway.stream.resume import parse_resume
from gateway.web import cors
from gateway.web.errors import close_frame, error_response, json_error
from gateway.web.http_auth import authenticate, bearer_token, client_address, route_of
from gateway.web.keys import GATEWAY
from gateway.web.listen.session import StreamSession
from gateway.web.listen.starting import (
    may_stream,
    new_session,
    parse_config,
    resumable,
    resume,
    take_over,
)

log = get_logger("gateway.listen")
SUBPROTOCOL = "token"
CLOSE_TIMEOUT = 5.0


class StreamSocket(web.WebSocketResponse):
    """The stream's WebSocket: a frame so large that aiohttp refuses it unread (before
    buffering it) still gets the protocol's ``Error`` before aiohttp's own close 1009."""

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message and not self.closed:
            too_big = FrameTooLarge("frame larger than MAX_FRAME_BYTES")
            with contextlib.suppress(Exception):
                await self.send_str(protocol.encode(protocol.error(too_big)))
            message = too_big.code.encode()
        return await super().close(code=code, message=message, drain=drain)


def offered_token(request: web.Request) -> tuple[str | None, bool]:
    """The JWT from the first place that has one, and whether it came as a subprotocol."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == SUBPROTOCOL and offered[1]:
        return offered[1], True
    if request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        return bearer_token(request), False
    return request.query.get("access_token") or None, False


def origin_allowed(gateway: Gateway, origin: str | None) -> bool:
    return cors.origin_allowed(gateway.settings.allowed_origins, origin)


async def listen(request: web.Request) -> web.StreamResponse:
    """The handshake (origin, token, query, admission), then the session until it ends."""
    gateway = request.app[GATEWAY]
    metrics = gateway.metrics
    if not origin_allowed(gateway, request.headers.get("Origin")):
        metrics.sessions.labels(outcome="rejected_origin").inc()
        log.warning("session.rejected", outcome="rejected_origin")
        return json_error(request, 403, "FORBIDDEN", "origin not allowed")
    token, as_subprotocol = offered_token(request)
    try:
        claims: Claims | None = authenticate(request, token)
    except TooManyFailures as exc:
        metrics.sessions.labels(outcome="rejected_auth").inc()
        return error_response(request, exc)
    except InvalidToken as exc:
        claims, refusal = None, str(exc)
    ws = StreamSocket(
        protocols=(SUBPROTOCOL,) if as_subprotocol else (),
        max_msg_size=max(4 * gateway.settings.MAX_FRAME_BYTES, 1024 * 1024),
        compress=False,
        # Server pings keep proxies in front of a muted classroom (nothing sent to it for
        # minutes) from timing the connection out; measured at ~3 % of the frame path.
        heartbeat=30.0,
        timeout=CLOSE_TIMEOUT,
    )
    await ws.prepare(request)
    try:
        if claims is None:
            raise Unauthorized(refusal)
        may_stream(claims)
        ask = parse_resume(request.query)
        start = None
        if ask is not None:
            parse_config(gateway, request)  # a bad query is refused on a resume too
            earlier = resumable(gateway, ask, claims)
            if earlier is not None:
                abort = _aborter(request)
                connection = await resume(gateway, earlier, ws, abort, claims, ask.last_seq)
                await connection.over.wait()
                return ws
            start = await take_over(gateway, ask, claims)
        if start is None:
            start = await new_session(gateway, request, claims, resume_failed=ask is not None)
    except StreamError as exc:
        await _reject(request, ws, exc, claims)
        return ws
    session = StreamSession(
        ws,
        start,
        processor=gateway.processor,
        metrics=metrics,
        abort=_aborter(request),
        interims=gateway.interims,
        kept=gateway.kept,
    )
    await _live(gateway, session, claims)
    return ws


async def _live(gateway: Gateway, session: StreamSession, claims: Claims) -> None:
    """Run ``session`` registered, announced and audited; every ``session.started`` gets its
    ``session.ended``, also when the handler is cancelled (the peer vanished, or shutdown)."""
    metrics = gateway.metrics
    structlog.contextvars.bind_contextvars(session_id=session.session_id)
    gateway.registry.register(session)
    gateway.presence.announce(session)
    metrics.sessions.labels(outcome="accepted").inc()
    identity: dict[str, Any] = {
        "who": actor(claims.sub, claims.role),
        "school_id": session.school_id,
        "group_id": session.group_id,
        "session_id": session.session_id,
    }
    config = session.config
    gateway.audit.record("session.started", **identity, model=config.model)
    log.info(
        "session.started",
        school_id=session.school_id,
        group_id=session.group_id,
        model=config.model,
        sample_rate=config.sample_rate,
    )
    reason, close_code = "error", 1011
    try:
        ending = await session.run()
        reason, close_code = ending.metric_reason, ending.close_code
    except Exception:
        log.exception("session.crashed")
        if session.connection is not None:
            with contextlib.suppress(Exception):
                await session.connection.ws.close(code=1011, message=b"INTERNAL")
    finally:
        gateway.registry.unregister(session)
        gateway.presence.forget(session)
        fleet = gateway.fleet
        if fleet is not None:
            gateway.presence.spawn(
                fleet.release(session.school_id, session.group_id, session.session_id)
            )
        metrics.sessions_ended.labels(reason=reason).inc()
        totals: dict[str, Any] = {
            "reason": reason,
            "audio_seconds": round(session.audio_seconds, 3),
            "cost_usd": round(session.cost_usd, 6),
            **session.counts,
        }
        gateway.audit.record("session.ended", **identity, **totals)
        log.info("session.ended", close_code=close_code, **totals)
        structlog.contextvars.unbind_contextvars("session_id")


def _aborter(request: web.Request) -> Callable[[], None]:
    def abort() -> None:
        if request.transport is not None:
            request.transport.abort()

    return abort


_REJECT_OUTCOMES = {
    "UNAUTHORIZED": "rejected_auth",
    "FORBIDDEN": "rejected_auth",
    "BAD_CONFIG": "rejected_config",
    "OVERLOADED": "rejected_capacity",
    "BUDGET_UNAVAILABLE": "rejected_capacity",
}


async def _reject(
    request: web.Request, ws: web.WebSocketResponse, exc: StreamError, claims: Claims | None
) -> None:
    gateway = request.app[GATEWAY]
    outcome = _REJECT_OUTCOMES.get(exc.code, "rejected_config")
    gateway.metrics.sessions.labels(outcome=outcome).inc()
    if claims is not None and exc.code == "FORBIDDEN":
        gateway.auth_guard.denied(
            client_address(request),
            exc.message,
            route_of(request),
            who=actor(claims.sub, claims.role),
            school_id=claims.school_id,
            failed_auth=False,
        )
    log.info("session.rejected", outcome=outcome, code=exc.code, reason=exc.message)
    code, reason = close_frame(exc)
    with contextlib.suppress(Exception):
        await ws.send_str(protocol.encode(protocol.error(exc)))
        await ws.close(code=code, message=reason)
