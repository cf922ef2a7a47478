"""Which scopes a window is charged to, and on which day of each (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.budget.ledger import ScopeDay
from gateway.budget.policy import Policy, SchoolBudget


def day_in(timezone: str, now: datetime) -> str:
    """The calendar day (YYYY-MM-DD) of ``now`` in ``timezone``."""
    return now.astimezone(ZoneInfo(timezone)).date().isoformat()


def scopes_for(
    policy: Policy, school: SchoolBudget, model: str, now: datetime, *, unlimited: bool = False
) -> list[ScopeDay]:
    """global, model (if limited), district (if any), school — the school last."""
    utc_day = now.astimezone(UTC).date().isoformat()

    def limit(value: int | None) -> int | None:
        return None if unlimited else value

    scopes = [ScopeDay("global", utc_day, limit(policy.global_limit_micro))]
    if model in policy.model_limits_micro:
        scopes.append(ScopeDay(f"model:{model}", utc_day, limit(policy.model_limits_micro[model])))
    if school.district_id:
        district = policy.district(school.district_id)
        scopes.append(
            ScopeDay(
                f"district:{district.district_id}",
                day_in(district.timezone, now),
                limit(district.daily_limit_micro),
            )
        )
    scopes.append(
        ScopeDay(
            f"school:{school.school_id}",
            day_in(school.timezone, now),
            limit(school.daily_limit_micro),
        )
    )
    return scopes


def percent(spent_micro: int, limit_micro: int) -> float:
    if limit_micro <= 0:
        return 100.0 if spent_micro > 0 else 0.0
    return spent_micro * 100.0 / limit_micro
