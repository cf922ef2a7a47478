"""Spend against the limits: a school's day, and every scope's for platform admins."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from gateway.budget.ledger import Ledger
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.budget.scopes import day_in, percent
from gateway.budget.today import todays_schools
from gateway.runtime.gateway import Gateway
from gateway.web.api.base import (
    HISTORY_DAYS,
    ISO_DAY,
    api,
    invalid,
    ledger_of,
)
from gateway.web.http_auth import require
from gateway.web.keys import GATEWAY


async def usage_document(gateway: Gateway, school: SchoolBudget, day: str) -> dict[str, Any]:
    ledger = ledger_of(gateway)
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
    ledger = ledger_of(gateway)
    now = datetime.now(UTC)
    schools = []
    for school, day, counters in await todays_schools(gateway.budget, now):
        doc = usage_from_counters(gateway, school, day, counters)
        if doc["spent_usd"] or doc["reserved_usd"] or doc["audio_seconds"]:
            schools.append(doc)  # with audio today: a school on a free model spends $0
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


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/schools/{school_id}/budget/usage", school_usage)
    router.add_get("/api/v1/budget/usage", global_usage)
