"""Budget gauges computed from the ledger at scrape time (capped, bounded labels)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.budget.pricing import usd
from gateway.budget.scopes import day_in, percent
from gateway.budget.today import todays_schools
from gateway.errors import LedgerUnavailable
from gateway.runtime.gateway import Gateway

SCRAPE_BUDGET_SECONDS = 2.0


async def refresh_budget_gauges(gateway: Gateway) -> None:
    """Set ``stt_budget_used_ratio`` and the per-school gauges; leave them be if Redis is down."""
    ledger = gateway.budget.ledger
    if ledger is None:
        return
    metrics = gateway.metrics
    policy = gateway.policy
    now = datetime.now(UTC)
    try:
        async with asyncio.timeout(SCRAPE_BUDGET_SECONDS):
            utc_day = now.date().isoformat()
            spent = (await ledger.day("global", utc_day)).get("spent", 0)
            metrics.budget_spent_usd.labels(scope="global").set(usd(spent))
            if policy.global_limit_micro:
                metrics.budget_used_ratio.labels(scope="global").set(
                    percent(spent, policy.global_limit_micro) / 100
                )
            for district_id in policy.districts:
                district = policy.district(district_id)
                scope = f"district:{district_id}"
                spent = (await ledger.day(scope, day_in(district.timezone, now))).get("spent", 0)
                metrics.budget_spent_usd.labels(scope=scope).set(usd(spent))
                if district.daily_limit_micro:
                    metrics.budget_used_ratio.labels(scope=scope).set(
                        percent(spent, district.daily_limit_micro) / 100
                    )
            rows = []
            for school, _day, counters in await todays_schools(gateway.budget, now):
                spent = counters.get("spent", 0)
                rows.append(
                    (percent(spent, school.daily_limit_micro) / 100, spent, school.school_id)
                )
    except LedgerUnavailable:
        return
    rows.sort(reverse=True)
    metrics.school_used_ratio.clear()
    metrics.school_spent_usd.clear()
    for ratio, spent, school_id in rows[: gateway.settings.METRICS_MAX_SCHOOLS]:
        metrics.school_used_ratio.labels(school_id=school_id).set(ratio)
        metrics.school_spent_usd.labels(school_id=school_id).set(usd(spent))
