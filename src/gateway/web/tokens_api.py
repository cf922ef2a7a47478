"""``POST /api/v1/tokens``: a teacher mints a group's stream token and link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.auth.tokens import mint
from gateway.errors import HttpError
from gateway.keyterms import MAX_TERM_CHARS, MAX_TERMS, BadKeyterms, check_terms
from gateway.observability.audit import actor
from gateway.web.api_base import (
    MAX_TOKEN_TTL,
    api,
    invalid,
    iso_utc,
    read_json,
)
from gateway.web.http_auth import require
from gateway.web.links import page_link
from gateway.web.state import GATEWAY

TOKEN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["group_id"],
    "properties": {
        "group_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": MAX_TOKEN_TTL},
        "school_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "keyterms": {
            "type": "array",
            "maxItems": MAX_TERMS,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_TERM_CHARS},
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
    )
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    gateway.audit.record(
        "token.issued",
        who=actor(claims.sub, claims.role),
        school_id=school_id,
        group_id=body["group_id"],
        ttl_seconds=ttl,
        keyterms=len(terms),
    )
    base = gateway.settings.PUBLIC_BASE_URL or str(request.url.origin())
    return web.json_response(
        {"token": token, "expires_at": iso_utc(expires), "url": page_link(base, token)},
        status=201,
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/tokens", issue_token)
