"""What every JSON API handler shares: the error envelope, bounded bodies validated by
JSON Schema, per-field problems, the ledger, a school's stored settings."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from gateway import jsonstrict
from gateway.budget.ledger import Ledger
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.errors import GatewayError, HttpError, JsonError, LedgerUnavailable
from gateway.runtime.gateway import Gateway
from gateway.web.bodies import body_deadline
from gateway.web.errors import error_response, json_error

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
        except LedgerUnavailable:
            return json_error(
                request,
                503,
                "LEDGER_UNAVAILABLE",
                "the budget ledger is unreachable; try again shortly",
            )
        except GatewayError as exc:
            return error_response(request, exc)

    return wrapped


async def read_body(request: web.Request, limit: int = JSON_BODY_MAX) -> bytes:
    """The whole body (every chunk, however it was split or chunked), at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async with body_deadline(request):
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
    except (JsonError, UnicodeDecodeError) as exc:
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


def ascending(body: dict[str, Any], field: str) -> list[dict[str, str]]:
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


def reject_if(details: list[dict[str, str]]) -> None:
    if details:
        raise HttpError(
            400,
            "VALIDATION_ERROR",
            "invalid fields: " + ", ".join(d["field"] for d in details),
            details,
        )


def ledger_of(gateway: Gateway) -> Ledger:
    if gateway.budget.ledger is None:
        raise HttpError(503, "LEDGER_UNAVAILABLE", "budget enforcement is disabled")
    return gateway.budget.ledger


async def save_overrides(
    gateway: Gateway, school_id: str, overrides: dict[str, Any]
) -> SchoolBudget:
    """Store a school's overrides (every replica sees them within seconds); the new settings."""
    ledger = ledger_of(gateway)
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


def iso_utc(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")
