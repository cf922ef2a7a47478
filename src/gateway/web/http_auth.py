"""Bearer tokens and roles for the HTTP API."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.tokens import Claims, verify
from gateway.errors import HttpError, InvalidToken, TooManyFailures
from gateway.observability.audit import actor
from gateway.web.keys import GATEWAY


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


RANK = {"student": 0, "teacher": 1, "school_admin": 2, "platform_admin": 3}


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


def route_of(request: web.Request) -> str:
    """The route template (bounded), not the path a client chose."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def authenticate(request: web.Request, token: str | None = None) -> Claims:
    """The claims of ``token`` (by default the ``Authorization: Bearer`` header's): the one
    check of the HTTP API, the WebSocket handshake and the passthrough. A refusal is counted
    per client address and audited (aggregated); it raises :class:`InvalidToken` (401), or
    :class:`TooManyFailures` (429) for an address past its failed-authentication limit.
    :mod:`gateway.web.errors` maps both."""
    gateway = request.app[GATEWAY]
    guard = gateway.auth_guard
    address = client_address(request)
    try:
        return verify(
            token or bearer_token(request),
            gateway.secret,
            max_ttl_seconds=gateway.settings.TOKEN_MAX_TTL_SECONDS,
        )
    except InvalidToken as exc:
        wait = guard.blocked_for(address)
        if wait:
            raise TooManyFailures(wait) from None
        guard.denied(address, str(exc), route_of(request))
        raise


def require(request: web.Request, role: str, school_id: str | None = None) -> Claims:
    """The caller's claims when it has at least ``role`` (for ``school_id`` if given)."""
    claims = authenticate(request)
    gateway = request.app[GATEWAY]
    allowed = RANK[claims.role] >= RANK[role]
    if allowed and school_id is not None and claims.role != "platform_admin":
        allowed = claims.school_id == school_id
    if not allowed:
        gateway.auth_guard.denied(
            client_address(request),
            "forbidden",
            route_of(request),
            who=actor(claims.sub, claims.role),
            school_id=claims.school_id,
            failed_auth=False,
        )
        raise HttpError(403, "FORBIDDEN", "this token may not do that")
    return claims
