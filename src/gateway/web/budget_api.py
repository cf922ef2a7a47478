"""Budget configuration, usage and alerts; stream tokens."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from gateway import jsonstrict
from gateway.auth.tokens import Claims, mint
from gateway.budget.ledger import Ledger
from gateway.budget.policy import SchoolBudget, to_micro, valid_timezone
from gateway.budget.pricing import usd
from gateway.budget.scopes import day_in, percent
from gateway.budget.service import LEDGER_ERRORS
from gateway.budget.webhooks import webhook_destination_problem
from gateway.keyterms import MAX_TERM_CHARS, MAX_TERMS, BadKeyterms, check_terms
from gateway.observability.audit import actor
from gateway.web.errors import json_error
from gateway.web.http_auth import HttpError, require
from gateway.web.links import page_link
from gateway.web.state import GATEWAY, Gateway

JSON_BODY_MAX = 1024 * 1024
HISTORY_DAYS = 35
ALERT_HISTORY_DAYS = 30
MAX_TOKEN_TTL = 24 * 3600
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api(handler: Handler) -> Handler:
    """Map HttpError and ledger failures to the error envelope."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as exc:
            return json_error(
                request, exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
            )
        except LEDGER_ERRORS:
            return json_error(
                request,
                503,
                "LEDGER_UNAVAILABLE",
                "the budget ledger is unreachable; try again shortly",
            )

    return wrapped


async def read_body(request: web.Request, limit: int = JSON_BODY_MAX) -> bytes:
    """The whole body (every chunk, however it was split or chunked), at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "PAYLOAD_TOO_LARGE", f"bodies are limited to {limit} bytes")


async def read_json(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    raw = await read_body(request)
    try:
        body = jsonstrict.loads(raw or b"null")
    except (jsonstrict.JsonError, UnicodeDecodeError) as exc:
        raise invalid("(body)", str(exc), "body is not valid JSON") from None
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: e.path)
    if errors:
        details = [_detail(e) for e in errors]
        raise HttpError(
            400,
            "VALIDATION_ERROR",
            "invalid fields: " + ", ".join(d["field"] for d in details),
            details,
        )
    return dict(body)


def _detail(error: Any) -> dict[str, str]:
    path = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return {"field": extra[0] if extra else path or "(body)", "problem": "unknown field"}
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else path
        return {"field": missing, "problem": "required"}
    return {"field": path or "(body)", "problem": error.message}


def _ascending(body: dict[str, Any], field: str) -> list[dict[str, str]]:
    """A validation detail when ``body[field]`` is not strictly ascending."""
    values = body.get(field)
    if values is not None and any(a >= b for a, b in itertools.pairwise(values)):
        return [{"field": field, "problem": "must be strictly ascending"}]
    return []


def invalid(field: str, problem: str, message: str | None = None) -> HttpError:
    """A 400 VALIDATION_ERROR naming one field."""
    return HttpError(
        400,
        "VALIDATION_ERROR",
        message or f"invalid field: {field}",
        [{"field": field, "problem": problem}],
    )


def _reject_if(details: list[dict[str, str]]) -> None:
    if details:
        raise HttpError(
            400,
            "VALIDATION_ERROR",
            "invalid fields: " + ", ".join(d["field"] for d in details),
            details,
        )


def _ledger(gateway: Gateway) -> Ledger:
    if gateway.budget.ledger is None:
        raise HttpError(503, "LEDGER_UNAVAILABLE", "budget enforcement is disabled")
    return gateway.budget.ledger


async def _save_overrides(
    gateway: Gateway, school_id: str, overrides: dict[str, Any]
) -> SchoolBudget:
    """Store a school's overrides (every replica sees them within seconds); the new settings."""
    ledger = _ledger(gateway)
    if overrides:
        await ledger.set_overrides(school_id, overrides)
    else:
        await ledger.clear_overrides(school_id)
    return await gateway.budget.settings_changed(school_id)


def budget_document(school: SchoolBudget) -> dict[str, Any]:
    return {
        "school_id": school.school_id,
        "daily_limit_usd": usd(school.daily_limit_micro),
        "timezone": school.timezone,
        "alert_thresholds": list(school.alert_thresholds),
        "district_id": school.district_id,
        "source": school.source,
    }


# -- tokens ---------------------------------------------------------------------

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
        {"token": token, "expires_at": _iso(expires), "url": page_link(base, token)},
        status=201,
    )


# -- budget settings ----------------------------------------------------------------

BUDGET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "daily_limit_usd": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
        "alert_thresholds": {
            "type": "array",
            "maxItems": 20,
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    },
}


@api
async def get_budget(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    require(request, "teacher", school_id)
    return web.json_response(budget_document(await gateway.budget.school(school_id)))


@api
async def put_budget(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    claims = require(request, "school_admin", school_id)
    body = await read_json(request, BUDGET_SCHEMA)
    ledger = _ledger(gateway)
    before = await gateway.budget.school(school_id)
    details = []
    if "timezone" in body and not valid_timezone(body["timezone"]):
        details.append({"field": "timezone", "problem": "not an IANA timezone name"})
    details += _ascending(body, "alert_thresholds")
    cap = before.max_daily_limit_micro
    if (
        "daily_limit_usd" in body
        and cap is not None
        and claims.role != "platform_admin"
        and to_micro(body["daily_limit_usd"]) > cap
    ):
        details.append(
            {
                "field": "daily_limit_usd",
                "problem": f"above this school's maximum of {usd(cap)} USD",
            }
        )
    _reject_if(details)
    overrides = {**await ledger.overrides(school_id), **body}
    return await _replace_budget(gateway, claims, school_id, before, overrides)


async def _replace_budget(
    gateway: Gateway,
    claims: Claims,
    school_id: str,
    before: SchoolBudget,
    overrides: dict[str, Any],
) -> web.Response:
    """Store ``overrides`` as the school's settings, audit old and new, answer the new ones."""
    after = await _save_overrides(gateway, school_id, overrides)
    gateway.audit.record(
        "budget.updated",
        who=actor(claims.sub, claims.role),
        school_id=school_id,
        old=budget_document(before),
        new=budget_document(after),
    )
    return web.json_response(budget_document(after))


@api
async def delete_budget(request: web.Request) -> web.Response:
    """Return a school to its policy values (the webhook, set with the alerts, stays)."""
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    claims = require(request, "school_admin", school_id)
    ledger = _ledger(gateway)
    before = await gateway.budget.school(school_id)
    kept = {k: v for k, v in (await ledger.overrides(school_id)).items() if k == "webhook_url"}
    return await _replace_budget(gateway, claims, school_id, before, kept)


# -- usage ----------------------------------------------------------------------------------


async def usage_document(gateway: Gateway, school: SchoolBudget, day: str) -> dict[str, Any]:
    ledger = _ledger(gateway)
    counters = await ledger.day(f"school:{school.school_id}", day)
    return usage_from_counters(gateway, school, day, counters)


def usage_from_counters(
    gateway: Gateway, school: SchoolBudget, day: str, counters: dict[str, int]
) -> dict[str, Any]:
    spent, reserved = counters.get("spent", 0), counters.get("reserved", 0)
    limit = school.daily_limit_micro
    used = percent(spent, limit)
    below_100 = [t for t in school.alert_thresholds if t < 100]
    if spent >= limit or counters.get("refused", 0) > 0:
        status = "exceeded"
    elif below_100 and used >= min(below_100):
        status = "warning"
    else:
        status = "ok"
    by_model = {
        key.split(":", 1)[1]: {
            "audio_seconds": counters.get(f"audio_ms:{key.split(':', 1)[1]}", 0) / 1000,
            "spent_usd": usd(value),
        }
        for key, value in sorted(counters.items())
        if key.startswith("spent:")
    }
    return {
        "school_id": school.school_id,
        "date": day,
        "timezone": school.timezone,
        "daily_limit_usd": usd(limit),
        "spent_usd": usd(spent),
        "reserved_usd": usd(reserved),
        "remaining_usd": usd(max(0, limit - spent - reserved)),
        "percent_used": round(used, 2),
        "audio_seconds": counters.get("audio_ms", 0) / 1000,
        "by_model": by_model,
        "status": status,
        "enforcement_mode": gateway.settings.BUDGET_ENFORCEMENT_MODE,
    }


@api
async def school_usage(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    require(request, "teacher", school_id)
    school = await gateway.budget.school(school_id)
    today = day_in(school.timezone, datetime.now(UTC))
    day = request.query.get("date", today)
    try:
        if not ISO_DAY.fullmatch(day):
            raise ValueError(day)
        wanted = date.fromisoformat(day)
    except ValueError:
        raise invalid("date", "not a YYYY-MM-DD date", "date must be YYYY-MM-DD") from None
    if not 0 <= (date.fromisoformat(today) - wanted).days <= HISTORY_DAYS:
        raise invalid(
            "date", "out of the kept history", f"date must be within the last {HISTORY_DAYS} days"
        )
    return web.json_response(await usage_document(gateway, school, wanted.isoformat()))


@api
async def global_usage(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require(request, "platform_admin")
    ledger = _ledger(gateway)
    now = datetime.now(UTC)
    schools = []
    for school, day, counters in await gateway.budget.todays_schools(now):
        doc = usage_from_counters(gateway, school, day, counters)
        if doc["spent_usd"] or doc["reserved_usd"]:
            schools.append(doc)
    schools.sort(key=lambda d: (-d["percent_used"], d["school_id"]))
    utc_day = now.date().isoformat()
    policy = gateway.policy
    scopes = [await _scope_usage(ledger, "global", utc_day, policy.global_limit_micro)]
    seen = {str(s["district_id"]) for s in schools if s.get("district_id")}
    for district_id in sorted(seen | set(policy.districts)):
        district = policy.district(str(district_id))
        scopes.append(
            await _scope_usage(
                ledger,
                f"district:{district.district_id}",
                day_in(district.timezone, now),
                district.daily_limit_micro,
            )
        )
    for model, limit in sorted(policy.model_limits_micro.items()):
        scopes.append(await _scope_usage(ledger, f"model:{model}", utc_day, limit))
    scopes.sort(key=lambda d: -d["percent_used"])
    return web.json_response({"date": utc_day, "scopes": scopes, "schools": schools})


async def _scope_usage(ledger: Ledger, scope: str, day: str, limit: int | None) -> dict[str, Any]:
    counters = await ledger.day(scope, day)
    spent = counters.get("spent", 0)
    return {
        "scope": scope,
        "date": day,
        "daily_limit_usd": usd(limit) if limit is not None else None,
        "spent_usd": usd(spent),
        "reserved_usd": usd(counters.get("reserved", 0)),
        "percent_used": round(percent(spent, limit), 2) if limit is not None else 0.0,
        "audio_seconds": counters.get("audio_ms", 0) / 1000,
    }


# -- alerts -------------------------------------------------------------------------------

ALERTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "thresholds": BUDGET_SCHEMA["properties"]["alert_thresholds"],  # type: ignore[index]
        "webhook_url": {"type": ["string", "null"], "maxLength": 2048},
    },
}


@api
async def get_alerts(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    require(request, "teacher", school_id)
    ledger = _ledger(gateway)
    school = await gateway.budget.school(school_id)
    today = date.fromisoformat(day_in(school.timezone, datetime.now(UTC)))
    fired = []
    for back in range(ALERT_HISTORY_DAYS + 1):
        day = (today - timedelta(days=back)).isoformat()
        for threshold, info in sorted((await ledger.fired_alerts(school_id, day)).items()):
            fired.append(
                {
                    "threshold": threshold,
                    "date": day,
                    "fired_at": info["fired_at"],
                    "percent_used": info["percent_used"],
                }
            )
    return web.json_response(
        {
            "thresholds": list(school.alert_thresholds),
            "webhook_configured": bool(school.webhook_url),
            "fired": fired,
        }
    )


@api
async def put_alerts(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    claims = require(request, "school_admin", school_id)
    body = await read_json(request, ALERTS_SCHEMA)
    details = []
    details += _ascending(body, "thresholds")
    thresholds = body.get("thresholds")
    url = body.get("webhook_url")
    if url:
        problem = await webhook_destination_problem(url, dev=gateway.settings.APP_ENV == "dev")
        if problem:
            details.append({"field": "webhook_url", "problem": problem})
    _reject_if(details)
    ledger = _ledger(gateway)
    before = await gateway.budget.school(school_id)
    overrides = await ledger.overrides(school_id)
    if thresholds is not None:
        overrides["alert_thresholds"] = thresholds
    if "webhook_url" in body:
        overrides["webhook_url"] = url or None
    after = await _save_overrides(gateway, school_id, overrides)
    gateway.audit.record(
        "budget.alerts_updated",
        who=actor(claims.sub, claims.role),
        school_id=school_id,
        old={
            "thresholds": list(before.alert_thresholds),
            "webhook_configured": bool(before.webhook_url),
        },
        new={
            "thresholds": list(after.alert_thresholds),
            "webhook_configured": bool(after.webhook_url),
        },
    )
    return web.json_response(
        {"thresholds": list(after.alert_thresholds), "webhook_configured": bool(after.webhook_url)}
    )


def _iso(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/tokens", issue_token)
    router.add_get("/api/v1/schools/{school_id}/budget", get_budget)
    router.add_put("/api/v1/schools/{school_id}/budget", put_budget)
    router.add_delete("/api/v1/schools/{school_id}/budget", delete_budget)
    router.add_get("/api/v1/schools/{school_id}/budget/usage", school_usage)
    router.add_get("/api/v1/schools/{school_id}/budget/alerts", get_alerts)
    router.add_put("/api/v1/schools/{school_id}/budget/alerts", put_alerts)
    router.add_get("/api/v1/budget/usage", global_usage)
