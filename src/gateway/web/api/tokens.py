"""``POST /api/v1/tokens``: a teacher mints a group's stream token and a single-use link;
``POST /api/v1/tokens/redeem``: a page trades the link's code for the token, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.auth.tokens import mint
from gateway.errors import BadKeyterms, HttpError, TooManyFailures
from gateway.ids import ID_PATTERN
from gateway.keyterms import KEYTERM_PATTERN, MAX_TERM_CHARS, MAX_TERMS, check_terms
from gateway.observability.audit import actor
from gateway.web.api.base import (
    MAX_TOKEN_TTL,
    api,
    invalid,
    iso_utc,
    read_json,
)
from gateway.web.http_auth import client_address, require, route_of
from gateway.web.keys import GATEWAY
from gateway.web.links import code_link

ID = {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 64}
#: A class vocabulary term: not blank, no control characters (keyterms.check_terms).
KEYTERM = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TERM_CHARS,
    "pattern": KEYTERM_PATTERN,
}

TOKEN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["group_id"],
    "properties": {
        "group_id": ID,
        "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": MAX_TOKEN_TTL},
        "school_id": ID,
        "keyterms": {
            "type": "array",
            "maxItems": MAX_TERMS,
            "items": KEYTERM,
        },
    },
}


@api
async def issue_token(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    claims = require(request, "teacher")
    body = await read_json(request, TOKEN_SCHEMA)
    school_id = claims.school_id
    if "school_id" in body:
        if claims.role != "platform_admin" and body["school_id"] != claims.school_id:
            raise HttpError(403, "FORBIDDEN", "school_id may be chosen by platform admins only")
        school_id = body["school_id"]
    if school_id is None:
        raise invalid("school_id", "required", "school_id is required for this token")
    ttl = int(body.get("ttl_seconds", 3600))
    most = gateway.settings.TOKEN_MAX_TTL_SECONDS
    if ttl > most:
        raise invalid("ttl_seconds", "too_large", f"at most {most} (TOKEN_MAX_TTL_SECONDS)")
    try:
        terms = check_terms(body.get("keyterms", []), "keyterms")
    except BadKeyterms as exc:
        raise invalid("keyterms", "invalid", str(exc)) from None
    token = mint(
        gateway.secret,
        school_id=school_id,
        group_id=body["group_id"],
        role="student",
        ttl_seconds=ttl,
        district_id=claims.district_id,
        keyterms=terms,
        max_ttl_seconds=most,
    )
    expires = iso_utc(datetime.now(UTC) + timedelta(seconds=ttl))
    gateway.audit.record(
        "token.issued",
        who=actor(claims.sub, claims.role),
        school_id=school_id,
        group_id=body["group_id"],
        ttl_seconds=ttl,
        keyterms=len(terms),
    )
    base = gateway.settings.PUBLIC_BASE_URL or str(request.url.origin())
    code = await gateway.link_codes.issue(token, expires)
    link_ttl = min(gateway.link_codes.ttl_seconds, ttl)
    return web.json_response(
        {
            "token": token,
            "expires_at": expires,
            "url": code_link(base, code),
            # the link opens once, until then; the session it starts may run to expires_at
            "url_expires_at": iso_utc(datetime.now(UTC) + timedelta(seconds=link_ttl)),
        },
        status=201,
    )


REDEEM_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code"],
    "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 128}},
}


@api
async def redeem_code(request: web.Request) -> web.Response:
    """A link's code for its token, once. Failed codes count as failed authentications
    from the address (429 past the limit), so codes cannot be guessed at speed."""
    gateway = request.app[GATEWAY]
    guard, address = gateway.auth_guard, client_address(request)
    wait = guard.blocked_for(address)
    if wait:
        raise TooManyFailures(wait)
    body = await read_json(request, REDEEM_SCHEMA)
    redeemed = await gateway.link_codes.redeem(body["code"])
    if redeemed is None:
        guard.denied(address, "invalid link code", route_of(request))
        raise HttpError(
            401, "INVALID_CODE", "this link was already used or has expired; ask for a new one"
        )
    return web.json_response({"token": redeemed.token, "expires_at": redeemed.expires_at})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/tokens", issue_token)
    router.add_post("/api/v1/tokens/redeem", redeem_code)
