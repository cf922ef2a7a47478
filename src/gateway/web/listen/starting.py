"""How a stream starts, and how a dropped one is resumed: the handshake's last steps once
the token and the query are known."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web

from gateway import keyterms
from gateway.auth.tokens import Claims
from gateway.errors import (
    Forbidden,
    LedgerDown,
    LedgerUnavailable,
    Overloaded,
    StreamError,
)
from gateway.fleet.claims import Fleet
from gateway.fleet.kept import HANDING_OVER, KeptSessions, Stored
from gateway.keyterms import vocabulary_prompt
from gateway.observability.audit import actor
from gateway.observability.logging import get_logger
from gateway.runtime.gateway import Gateway
from gateway.stream import protocol
from gateway.stream.protocol import StreamConfig
from gateway.stream.resume import ResumeAsk, new_token, token_matches, token_session
from gateway.stream.start import SessionStart
from gateway.web.listen.connection import Connection
from gateway.web.listen.session import StreamSession

log = get_logger("gateway.listen")
#: When a school at its cap of concurrent streams is asked to try again.
SCHOOL_CAP_RETRY_AFTER = 10.0
#: When a stream refused because the ledger is down (strict mode) is asked to try again.
LEDGER_DOWN_RETRY_AFTER = 5.0


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
        window_seconds=processor.window_seconds,
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
    _same_group(gateway, (session.school_id, session.group_id), claims)
    return session


def _same_group(gateway: Gateway, owner: tuple[str, str], claims: Claims) -> None:
    """A session is resumed only with a token of its own school and group."""
    if owner != (claims.school_id, claims.group_id):
        gateway.metrics.session_resumes.labels(outcome="forbidden").inc()
        raise Forbidden("this session belongs to another school or group")


def _resumed(gateway: Gateway, claims: Claims, session_id: str, last_seq: int) -> None:
    """A session continues (here or taken over): counted, audited, logged (never its token)."""
    gateway.metrics.session_resumes.labels(outcome="resumed").inc()
    gateway.audit.record(
        "session.resumed",
        who=actor(claims.sub, claims.role),
        school_id=claims.school_id,
        group_id=claims.group_id,
        session_id=session_id,
    )
    log.info("session.resumed", session_id=session_id, last_seq=last_seq)


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
    _resumed(gateway, claims, session.session_id, last_seq)
    return connection


#: A resume waits this long past the finishing bound for another replica to hand over.
HANDOVER_MARGIN_SECONDS = 2.0
#: A replica that does not say it is handing over within this long is taken for dead.
HANDOVER_ACK_SECONDS = 2.0
HANDOVER_POLL_SECONDS = 0.05


async def taken_over(
    gateway: Gateway, ask: ResumeAsk, claims: Claims, cap: int | None
) -> SessionStart | None:
    """The session ``ask`` names as Redis keeps it (None: unknown or ended), once its owner
    on another replica handed it over — or was found dead. Claiming the group with the
    session's own id is what tells the owner. :class:`Forbidden` for another school's or
    group's session."""
    kept, fleet, session_id = gateway.kept, gateway.fleet, token_session(ask.token)
    if kept is None or fleet is None or session_id is None:
        return None
    stored = await kept.load(session_id)
    if stored is None or not stored.token_matches(ask.token):
        return None
    _same_group(gateway, (stored.school_id, stored.group_id), claims)
    await fleet.claim(stored.school_id, stored.group_id, session_id, cap)
    bound = gateway.limits.finish_timeout + HANDOVER_MARGIN_SECONDS
    stored = await _handed_over(kept, session_id, stored, bound)
    if stored is None:
        return None
    log.info("session.taken_over", session_id=session_id, last_seq=ask.last_seq)
    return replace(
        session_start(gateway, claims, stored.config, session_id),
        resume_token=ask.token,
        settled=stored.settled,
        last_seq=ask.last_seq,
    )


async def _handed_over(
    kept: KeptSessions, session_id: str, stored: Stored, bound: float
) -> Stored | None:
    """What ``stored`` is once its owner let go of it: handed over (owner empty), or the
    owner is dead (its replica key gone, or no word from it within
    :data:`HANDOVER_ACK_SECONDS`); at most ``bound`` seconds."""
    started = time.monotonic()
    current: Stored | None = stored
    while current is not None and current.owner and current.owner != kept.replica:
        waited = time.monotonic() - started
        acked = current.owner.startswith(HANDING_OVER)
        if waited >= bound or (not acked and waited >= HANDOVER_ACK_SECONDS):
            break
        if not acked and not await kept.alive(current.owner):
            break
        await asyncio.sleep(HANDOVER_POLL_SECONDS)
        current = await kept.load(session_id)
    return current


def may_stream(claims: Claims) -> None:
    if claims.school_id is None or claims.group_id is None:
        raise Forbidden("this token does not name a school and group to stream for")


def parse_config(gateway: Gateway, request: web.Request) -> StreamConfig:
    return protocol.parse_query(
        request.query,
        default_model=gateway.settings.default_model,
        allowed_models=gateway.allowed_models,
        keyterms=request.query.getall("keyterm", []),
    )


def _admit(gateway: Gateway, request: web.Request, claims: Claims) -> StreamConfig:
    """The stream's configuration, once this token may stream here now; else a StreamError."""
    config = parse_config(gateway, request)
    assert claims.school_id is not None and claims.group_id is not None
    gateway.registry.check_admission((claims.school_id, claims.group_id), _cap(gateway, claims))
    if gateway.local is not None and not gateway.local.loaded.is_set():
        raise Overloaded("the local Whisper model is loading; retry shortly", retry_after=2.0)
    return config


def _cap(gateway: Gateway, claims: Claims) -> int | None:
    """The school's ``max_concurrent_streams`` (policy)."""
    assert claims.school_id is not None
    return gateway.budget.policy.school(claims.school_id, claims.district_id).max_concurrent_streams


async def _claim(fleet: Fleet | None, gateway: Gateway, claims: Claims, session_id: str) -> None:
    """Claim the group across the fleet: a stream for it on another replica is replaced; a
    new group past the school's ``max_concurrent_streams`` is refused (1013, retry later).
    Redis unreachable: refused in strict mode (1013 ``BUDGET_UNAVAILABLE``: its windows could
    only be dropped), else admitted (advisory: the bill is still recorded when it can be)."""
    if fleet is None:
        return
    assert claims.school_id is not None and claims.group_id is not None
    cap = _cap(gateway, claims)
    try:
        claim = await fleet.claim(claims.school_id, claims.group_id, session_id, cap)
    except LedgerUnavailable as exc:
        log.warning("fleet.claim_failed", error=exc.error)
        if gateway.settings.BUDGET_ENFORCEMENT_MODE == "strict":
            raise LedgerDown(
                "the budget ledger is unreachable; retry shortly",
                retry_after=LEDGER_DOWN_RETRY_AFTER,
            ) from None
        return
    if not claim.ok:
        gateway.metrics.admission_refused.labels(reason="school_cap").inc()
        raise Overloaded(
            f"the school already has {claim.streaming} of its {cap} concurrent streams",
            retry_after=SCHOOL_CAP_RETRY_AFTER,
        )


def _admit_again(fleet: Fleet | None, gateway: Gateway, claims: Claims, session_id: str) -> None:
    """The local bounds once more, with nothing awaited before the session registers:
    other streams may have started while the group was claimed. Refused: the claim is
    given back."""
    assert claims.school_id is not None and claims.group_id is not None
    key, cap = (claims.school_id, claims.group_id), _cap(gateway, claims)
    try:
        gateway.registry.check_admission(key, cap, paced=False)  # its place is taken
    except StreamError:
        if fleet is not None:
            gateway.presence.spawn(fleet.release(claims.school_id, claims.group_id, session_id))
        raise


async def new_session(
    gateway: Gateway, request: web.Request, claims: Claims, *, resume_failed: bool
) -> SessionStart:
    """A new session, admitted here and claimed fleet-wide (``resume_failed``: the client
    asked to resume one that is gone)."""
    if resume_failed:
        gateway.metrics.session_resumes.labels(outcome="expired").inc()
    session_id = uuid.uuid4().hex
    config = _admit(gateway, request, claims)
    await _claim(gateway.fleet, gateway, claims, session_id)
    _admit_again(gateway.fleet, gateway, claims, session_id)
    return session_start(gateway, claims, config, session_id, resume_failed=resume_failed)


async def take_over(gateway: Gateway, ask: ResumeAsk, claims: Claims) -> SessionStart | None:
    """A session another replica held, taken over here (None: it is gone)."""
    try:
        start = await taken_over(gateway, ask, claims, _cap(gateway, claims))
    except LedgerUnavailable as exc:
        log.warning("session.takeover_failed", error=exc.error)
        return None
    if start is not None:
        _admit_again(gateway.fleet, gateway, claims, start.session_id)
        _resumed(gateway, claims, start.session_id, ask.last_seq)
    return start
