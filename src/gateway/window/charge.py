"""The budget's side of one upstream call, for a window and an interim alike: the caller's
school, and a hold released if the call fails or is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.auth.tokens import Claims
from gateway.budget.policy import SchoolBudget
from gateway.budget.service import BudgetService
from gateway.budget.settlement import Hold
from gateway.observability import tracing

T = TypeVar("T")


async def billed_school(budget: BudgetService, claims: Claims) -> SchoolBudget:
    """The caller's school as its audio is billed (its stored settings: a reservation
    follows, which says if they changed)."""
    assert claims.school_id is not None
    return await budget.school(claims.school_id, claims.district_id, for_window=True)


async def held(
    budget: BudgetService,
    school: SchoolBudget,
    model: str,
    seconds: float,
    call: Callable[[], Awaitable[T]],
) -> tuple[Hold, T]:
    """Reserve ``seconds`` of ``model``, then ``call()``; the hold and its result, to be
    settled by the caller. A call that raises or is cancelled releases the hold first."""
    with tracing.span("budget.reserve"):
        hold = await budget.reserve(school, model, seconds)
    try:
        result = await call()
    except BaseException:
        await asyncio.shield(budget.release(hold))
        raise
    return hold, result
