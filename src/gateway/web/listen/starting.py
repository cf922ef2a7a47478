"""How a stream starts, and how a dropped one is resumed: the handshake's last steps once
the token and the query are known."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from aiohttp import web

from gateway import keyterms
from gateway.auth.tokens import Claims
from gateway.errors import Forbidden
from gateway.keyterms import vocabulary_prompt
from gateway.observability.audit import actor
from gateway.observability.logging import get_logger
from gateway.runtime.gateway import Gateway
from gateway.stream.protocol import StreamConfig
from gateway.stream.resume import ResumeAsk, new_token, token_matches, token_session
from gateway.stream.start import SessionStart
from gateway.web.listen.connection import Connection
from gateway.web.listen.session import StreamSession

log = get_logger("gateway.listen")


def session_start(
    gateway: Gateway,
    claims: Claims,
    config: StreamConfig,
    session_id: str,
    *,
    resume_failed: bool = False,
) -> SessionStart:
    """What a new session starts with, as this gateway's services and settings say now."""
    processor, settings = gateway.processor, gateway.settings
    live = gateway.interims is not None and config.interim_results
    return SessionStart(
        session_id=session_id,
        claims=claims,
        config=config,
        limits=gateway.limits,
        provider=gateway.provider,
        vocabulary=vocabulary_prompt(keyterms.merge(claims.keyterms, config.keyterms)),
        expires_in=claims.exp - time.time(),
        window_seconds=processor.service.window_seconds,
        model=processor.budget.model_for(claims.school_id or "", config.model),
        interim_interval=settings.INTERIM_INTERVAL_SECONDS if live else None,
        resume_token=new_token(session_id, secrets.token_urlsafe(24)),
        resume_seconds=settings.RESUME_SECONDS,
        resume_failed=resume_failed,
    )


def resumable(gateway: Gateway, ask: ResumeAsk, claims: Claims) -> StreamSession | None:
    """The live session ``ask`` names on this replica (None: unknown, ended, or ending);
    :class:`Forbidden` when it belongs to another school or group."""
    session_id = token_session(ask.token)
    session = None if session_id is None else gateway.registry.session(session_id)
    if not isinstance(session, StreamSession) or session.core.ending is not None:
        return None
    if not token_matches(ask.token, session.resume_token):
        return None
    if (session.school_id, session.group_id) != (claims.school_id, claims.group_id):
        gateway.metrics.session_resumes.labels(outcome="forbidden").inc()
        raise Forbidden("this session belongs to another school or group")
    return session


async def resume(
    gateway: Gateway,
    session: StreamSession,
    ws: web.WebSocketResponse,
    abort: Callable[[], None],
    claims: Claims,
    last_seq: int,
) -> Connection:
    """Continue ``session`` on ``ws``; recorded, counted and logged (never its token)."""
    connection = await session.resume(ws, abort, claims, last_seq)
    gateway.metrics.session_resumes.labels(outcome="resumed").inc()
    gateway.audit.record(
        "session.resumed",
        who=actor(claims.sub, claims.role),
        school_id=session.school_id,
        group_id=session.group_id,
        session_id=session.session_id,
    )
    log.info("session.resumed", session_id=session.session_id, last_seq=last_seq)
    return connection
