"""A school's budget settings: ``GET``, ``PUT`` and ``DELETE /api/v1/schools/{id}/budget``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.tokens import Claims
from gateway.budget.policy import SchoolBudget, to_micro, valid_timezone
from gateway.budget.pricing import usd
from gateway.observability.audit import actor
from gateway.runtime.gateway import Gateway
from gateway.web.api.base import (
    api,
    ascending,
    budget_document,
    ledger_of,
    read_json,
    reject_if,
    save_overrides,
)
from gateway.web.http_auth import require
from gateway.web.keys import GATEWAY

THRESHOLDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 20,
    "items": {"type": "integer", "minimum": 1, "maximum": 100},
}
BUDGET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "daily_limit_usd": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
        "alert_thresholds": THRESHOLDS_SCHEMA,
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
    ledger = ledger_of(gateway)
    before = await gateway.budget.school(school_id)
    details = []
    if "timezone" in body and not valid_timezone(body["timezone"]):
        details.append({"field": "timezone", "problem": "not an IANA timezone name"})
    details += ascending(body, "alert_thresholds")
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
    reject_if(details)
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
    after = await save_overrides(gateway, school_id, overrides)
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
    ledger = ledger_of(gateway)
    before = await gateway.budget.school(school_id)
    kept = {k: v for k, v in (await ledger.overrides(school_id)).items() if k == "webhook_url"}
    return await _replace_budget(gateway, claims, school_id, before, kept)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/schools/{school_id}/budget", get_budget)
    router.add_put("/api/v1/schools/{school_id}/budget", put_budget)
    router.add_delete("/api/v1/schools/{school_id}/budget", delete_budget)
