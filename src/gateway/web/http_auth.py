"""Bearer tokens and roles for the HTTP API."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.tokens import Claims, InvalidToken, verify
from gateway.observability.audit import actor
from gateway.web.state import GATEWAY

RANK = {"student": 0, "teacher": 1, "school_admin": 2, "platform_admin": 3}


class HttpError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def authenticate(request: web.Request) -> Claims:
    gateway = request.app[GATEWAY]
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    try:
        return verify(token, gateway.secret)
    except InvalidToken as exc:
        gateway.audit.record("auth.denied", reason=str(exc), route=request.path)
        raise HttpError(401, "UNAUTHORIZED", str(exc)) from None


def require(request: web.Request, role: str, school_id: str | None = None) -> Claims:
    """The caller's claims when it has at least ``role`` (for ``school_id`` if given)."""
    claims = authenticate(request)
    gateway = request.app[GATEWAY]
    allowed = RANK[claims.role] >= RANK[role]
    if allowed and school_id is not None and claims.role != "platform_admin":
        allowed = claims.school_id == school_id
    if not allowed:
        gateway.audit.record(
            "auth.denied",
            who=actor(claims.sub, claims.role),
            school_id=claims.school_id,
            reason="forbidden",
            route=request.path,
        )
        raise HttpError(403, "FORBIDDEN", "this token may not do that")
    return claims
