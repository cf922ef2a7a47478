"""Settling a reservation when the ledger cannot be reached: nothing charged is lost.

A charge the ledger did not take is journaled durably (:mod:`gateway.budget.journal`)
and replayed with backoff until Redis takes it; the commit script is idempotent
per reservation, so a replay after a commit that did land charges nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.budget.journal import CommitJournal, PendingCommit
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.errors import LedgerUnavailable
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics

log = get_logger("gateway.budget")

COMMIT_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation (``reservation_id`` None when nothing was reserved)."""

    reservation_id: str | None
    school: SchoolBudget
    school_day: str
    model: str
    amount_micro: int
    #: The ledger's day keys held (school last): a journal replay charges them if the hold
    #: itself has expired.
    day_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Charge:
    """What a settled window owes: ``seconds`` billed against ``hold``, ``actual_micro``
    micro-dollars. A stream's window is charged when its Transcript is kept and delivered
    (in one write with the session's state, so no replica can charge it twice)."""

    hold: Hold
    seconds: float
    actual_micro: int

    @property
    def audio_ms(self) -> int:
        return round(self.seconds * 1000)


def pending_commit(hold: Hold, actual: int, audio_ms: int) -> PendingCommit:
    """The journal entry of a charge the ledger did not take."""
    assert hold.reservation_id is not None
    return PendingCommit(
        id=hold.reservation_id,
        actual_micro=actual,
        audio_ms=audio_ms,
        model=hold.model,
        keys=hold.day_keys,
        school_id=hold.school.school_id,
        district_id=hold.school.district_id,
        school_day=hold.school_day,
        amount_micro=hold.amount_micro,
    )


Commit = Callable[[Hold, int, int], Awaitable[None]]
SchoolLookup = Callable[[str, str | None], Awaitable[SchoolBudget]]


class Settlement:
    """Retries of charges: from the journal, or (without one) in memory."""

    def __init__(self, commit: Commit, school: SchoolLookup, metrics: Metrics) -> None:
        self._commit = commit
        self._school = school
        self._metrics = metrics

    async def replay(self, journal: CommitJournal) -> None:
        """Hand every journaled charge to the ledger, retrying with backoff until all are taken."""
        delays = iter(COMMIT_RETRY_DELAYS)
        while journal.pending:
            for entry in journal.pending:
                school = await self._school(entry.school_id, entry.district_id)
                hold = Hold(
                    entry.id, school, entry.school_day, entry.model, entry.amount_micro, entry.keys
                )
                try:
                    await self._commit(hold, entry.actual_micro, entry.audio_ms)
                except LedgerUnavailable:
                    break
                journal.done(entry.id)
                log.info("budget.commit_recovered", school_id=entry.school_id)
            self._metrics.budget_commits_journaled.set(len(journal))
            if journal.pending:
                await asyncio.sleep(next(delays, COMMIT_RETRY_DELAYS[-1]))

    async def retry(self, hold: Hold, actual: int, audio_ms: int) -> None:
        """Without a journal (tests of the service alone): retry in memory."""
        for delay in COMMIT_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                await self._commit(hold, actual, audio_ms)
                log.info("budget.commit_recovered", school_id=hold.school.school_id)
                return
            except LedgerUnavailable:
                continue
        log.critical("budget.commit_lost", school_id=hold.school.school_id, actual_micro=actual)


def overspent(metrics: Metrics, hold: Hold, actual: int, overspend: int) -> None:
    """Always counted; logged when it is more than rounding (the upstream's usage seconds
    are rounded, so a 1 µ$ difference is routine)."""
    metrics.budget_overspend.inc(usd(overspend))
    if overspend > max(1, hold.amount_micro // 100):
        emit = log.critical if actual > 5 * hold.amount_micro else log.warning
        emit(
            "budget.overspend",
            school_id=hold.school.school_id,
            reserved_micro=hold.amount_micro,
            actual_micro=actual,
        )
