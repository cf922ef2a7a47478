"""The schools with spend or audio today, each in its own timezone, read from the ledger."""

from __future__ import annotations

from datetime import datetime

from gateway.budget.policy import SchoolBudget
from gateway.budget.scopes import day_in
from gateway.budget.service import BudgetService

#: Schools with a reservation this recently may have spend "today" in some timezone.
ACTIVE_SCHOOL_SECONDS = 2 * 86400


async def todays_schools(
    budget: BudgetService, now: datetime
) -> list[tuple[SchoolBudget, str, dict[str, int]]]:
    """Recently active schools, each with its own today and that day's ledger counters."""
    ledger = budget.ledger
    assert ledger is not None
    since_ms = int((now.timestamp() - ACTIVE_SCHOOL_SECONDS) * 1000)
    rows = []
    for school_id in await ledger.active_schools(since_ms):
        school = await budget.school(school_id)
        day = day_in(school.timezone, now)
        rows.append((school, day, await ledger.day(f"school:{school_id}", day)))
    return rows
