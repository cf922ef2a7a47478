"""A school's alert thresholds and webhook, and the alerts fired."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from gateway.budget.scopes import day_in
from gateway.budget.webhooks import webhook_destination_problem
from gateway.observability.audit import actor
from gateway.web.api.base import (
    ALERT_HISTORY_DAYS,
    api,
    ascending,
    ledger_of,
    read_json,
    reject_if,
    save_overrides,
)
from gateway.web.api.settings import THRESHOLDS_SCHEMA
from gateway.web.http_auth import require
from gateway.web.keys import GATEWAY

ALERTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "thresholds": THRESHOLDS_SCHEMA,
        "webhook_url": {"type": ["string", "null"], "maxLength": 2048},
    },
}


@api
async def get_alerts(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    school_id = request.match_info["school_id"]
    require(request, "teacher", school_id)
    ledger = ledger_of(gateway)
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
    details += ascending(body, "thresholds")
    thresholds = body.get("thresholds")
    url = body.get("webhook_url")
    if url:
        problem = await webhook_destination_problem(url, dev=gateway.settings.APP_ENV == "dev")
        if problem:
            details.append({"field": "webhook_url", "problem": problem})
    reject_if(details)
    ledger = ledger_of(gateway)
    before = await gateway.budget.school(school_id)
    overrides = await ledger.overrides(school_id)
    if thresholds is not None:
        overrides["alert_thresholds"] = thresholds
    if "webhook_url" in body:
        overrides["webhook_url"] = url or None
    after = await save_overrides(gateway, school_id, overrides)
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


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/schools/{school_id}/budget/alerts", get_alerts)
    router.add_put("/api/v1/schools/{school_id}/budget/alerts", put_alerts)
