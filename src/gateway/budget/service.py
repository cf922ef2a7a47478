"""Budget enforcement: reserve before a window goes upstream, commit or release after.

Modes: ``strict`` refuses when a scope is full and when the ledger is
unreachable; ``advisory`` never refuses (it logs and counts what would have
been refused, and still records spend); ``disabled`` makes no ledger calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.exceptions

from gateway.budget.journal import CommitJournal, PendingCommit
from gateway.budget.ledger import Ledger, ReserveResult, ScopeDay
from gateway.budget.policy import Policy, SchoolBudget
from gateway.budget.pricing import usd
from gateway.budget.scopes import day_in, percent, scopes_for
from gateway.errors import BudgetRefused, BudgetUnavailable
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics

log = get_logger("gateway.budget")

LEDGER_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
OVERRIDE_CACHE_SECONDS = 2.0
COMMIT_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60, 120)
#: Schools with a reservation this recently may have spend "today" in some timezone.
ACTIVE_SCHOOL_SECONDS = 2 * 86400


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
class AlertFired:
    school_id: str
    day: str
    threshold: int
    percent_used: float
    remaining_usd: float
    fired_at: str


AlertListener = Callable[[AlertFired], Awaitable[None]]


class BudgetService:
    def __init__(
        self,
        policy: Policy,
        ledger: Ledger | None,
        *,
        mode: str,
        metrics: Metrics,
        lease_seconds: float,
        journal: CommitJournal | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.ledger = ledger
        self.mode = mode
        self._metrics = metrics
        self._lease_ms = int(lease_seconds * 1000)
        self._clock = clock
        self._overrides: dict[str, tuple[float, dict[str, Any]]] = {}
        self._percent: dict[str, float] = {}
        self._fired_seen: set[tuple[str, str, int]] = set()
        self._listeners: list[AlertListener] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.journal = journal
        self._replayer: asyncio.Task[None] | None = None

    def add_alert_listener(self, listener: AlertListener) -> None:
        self._listeners.append(listener)

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled" and self.ledger is not None

    # -- settings -----------------------------------------------------------

    async def school(self, school_id: str, district_claim: str | None = None) -> SchoolBudget:
        base = self.policy.school(school_id, district_claim)
        if not self.enabled:
            return base
        return base.with_overrides(await self._cached_overrides(school_id))

    async def _cached_overrides(self, school_id: str) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._overrides.get(school_id)
        if cached and now - cached[0] < OVERRIDE_CACHE_SECONDS:
            return cached[1]
        assert self.ledger is not None
        try:
            values = await self.ledger.overrides(school_id)
        except LEDGER_ERRORS:
            return cached[1] if cached else {}
        self._overrides[school_id] = (now, values)
        return values

    async def settings_changed(self, school_id: str) -> SchoolBudget:
        """Re-read a school's settings after a change and recompute its state from the ledger:
        a refusal under the old limit no longer marks today ``exceeded`` and the downgrade
        follows the new limit at once (other replicas follow on their next reservation)."""
        self._overrides.pop(school_id, None)
        school = await self.school(school_id)
        if self.ledger is not None:
            day = day_in(school.timezone, self._clock())
            counters = await self.ledger.clear_refusals(f"school:{school_id}", day)
            self._percent[school_id] = percent(
                counters.get("spent", 0) + counters.get("reserved", 0), school.daily_limit_micro
            )
        return school

    async def todays_schools(self, now: datetime) -> list[tuple[SchoolBudget, str, dict[str, int]]]:
        """Recently active schools, each with its own today and that day's ledger counters."""
        assert self.ledger is not None
        since_ms = int((now.timestamp() - ACTIVE_SCHOOL_SECONDS) * 1000)
        rows = []
        for school_id in await self.ledger.active_schools(since_ms):
            school = await self.school(school_id)
            day = day_in(school.timezone, now)
            rows.append((school, day, await self.ledger.day(f"school:{school_id}", day)))
        return rows

    def model_for(self, school_id: str, requested: str) -> str:
        """The requested model, or a cheaper one once the school passed a downgrade step."""
        return self.policy.downgraded_model(requested, self._percent.get(school_id, 0.0))

    # -- lifecycle ------------------------------------------------------------

    async def reserve(self, school: SchoolBudget, model: str, seconds: float) -> Hold:
        now = self._clock()
        amount = self.policy.pricing.cost_micro(model, seconds)
        scopes = scopes_for(self.policy, school, model, now)
        school_day = scopes[-1].day
        if not self.enabled:
            return Hold(None, school, school_day, model, amount)
        assert self.ledger is not None
        ledger = self.ledger
        now_ms = int(now.timestamp() * 1000)

        async def hold_on(on: list[ScopeDay]) -> ReserveResult:
            return await ledger.reserve(
                scopes=on,
                amount_micro=amount,
                school_id=school.school_id,
                model=model,
                now_ms=now_ms,
                lease_ms=self._lease_ms,
            )

        try:
            result = await hold_on(scopes)
            if not result.ok and self.mode == "advisory":
                log.warning(
                    "budget.would_refuse",
                    school_id=school.school_id,
                    scope=result.refused_scope,
                    amount_micro=amount,
                )
                self._metrics.budget_reservations.labels(outcome="exceeded").inc()
                result = await hold_on(scopes_for(self.policy, school, model, now, unlimited=True))
        except LEDGER_ERRORS as exc:
            if self.mode == "strict":
                self._metrics.budget_reservations.labels(outcome="error").inc()
                log.error(
                    "budget.ledger_unreachable",
                    school_id=school.school_id,
                    error=type(exc).__name__,
                )
                raise BudgetUnavailable("the budget ledger is unreachable") from None
            self._metrics.budget_reservations.labels(outcome="bypassed").inc()
            return Hold(None, school, school_day, model, amount)
        self._percent[school.school_id] = percent(
            result.school_spent + result.school_reserved, school.daily_limit_micro
        )
        if not result.ok:
            self._metrics.budget_reservations.labels(outcome="exceeded").inc()
            self._percent[school.school_id] = 100.0
            log.warning("budget.exceeded", school_id=school.school_id, scope=result.refused_scope)
            self._spawn(
                self._fire(school, school_day, 100.0, result.school_spent + result.school_reserved)
            )
            raise BudgetRefused(result.refused_scope or "school")
        self._metrics.budget_reservations.labels(outcome="ok").inc()
        return Hold(result.reservation_id, school, school_day, model, amount, result.day_keys)

    async def commit(self, hold: Hold, seconds: float) -> int:
        """Charge the billed ``seconds``; returns the cost in micro-dollars."""
        actual = self.policy.pricing.cost_micro(hold.model, seconds)
        if hold.reservation_id is None or self.ledger is None:
            return actual
        try:
            await self._commit(hold, actual, round(seconds * 1000))
        except LEDGER_ERRORS:
            self._defer(hold, actual, round(seconds * 1000))
        return actual

    def _defer(self, hold: Hold, actual: int, audio_ms: int) -> None:
        """The ledger is unreachable: journal the charge durably, replay it until taken."""
        assert hold.reservation_id is not None
        log.error("budget.commit_deferred", school_id=hold.school.school_id)
        if self.journal is None:
            self._spawn(self._retry_commit(hold, actual, audio_ms))
            return
        self.journal.add(
            PendingCommit(
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
        )
        self.start_replay()

    def start_replay(self) -> None:
        """Replay journaled charges in the background (at start-up and after a deferral)."""
        if self.journal is None or not len(self.journal):
            return
        self._metrics.budget_commits_journaled.set(len(self.journal))
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.create_task(self.replay_journal())

    async def replay_journal(self) -> None:
        """Hand every journaled charge to the ledger, retrying with backoff until all are taken."""
        journal = self.journal
        if journal is None or self.ledger is None:
            return
        delays = iter(COMMIT_RETRY_DELAYS)
        while journal.pending:
            for entry in journal.pending:
                school = await self.school(entry.school_id, entry.district_id)
                hold = Hold(
                    entry.id, school, entry.school_day, entry.model, entry.amount_micro, entry.keys
                )
                try:
                    await self._commit(hold, entry.actual_micro, entry.audio_ms)
                except LEDGER_ERRORS:
                    break
                journal.done(entry.id)
                log.info("budget.commit_recovered", school_id=entry.school_id)
            self._metrics.budget_commits_journaled.set(len(journal))
            if journal.pending:
                await asyncio.sleep(next(delays, COMMIT_RETRY_DELAYS[-1]))

    async def _commit(self, hold: Hold, actual: int, audio_ms: int) -> None:
        assert self.ledger is not None and hold.reservation_id is not None
        result = await self.ledger.commit(
            hold.reservation_id,
            actual_micro=actual,
            audio_ms=audio_ms,
            model=hold.model,
            day_keys=hold.day_keys,
            amount_micro=hold.amount_micro,
        )
        if result.status != 1:
            return
        if result.overspend_micro:
            # Always counted; logged when it is more than rounding (the upstream's usage
            # seconds are rounded, so a 1 µ$ difference is routine).
            self._metrics.budget_overspend.inc(usd(result.overspend_micro))
            noteworthy = result.overspend_micro > max(1, hold.amount_micro // 100)
            emit = log.critical if actual > 5 * hold.amount_micro else log.warning
            if noteworthy:
                emit(
                    "budget.overspend",
                    school_id=hold.school.school_id,
                    reserved_micro=hold.amount_micro,
                    actual_micro=actual,
                )
        used = percent(result.school_spent, hold.school.daily_limit_micro)
        self._percent[hold.school.school_id] = used
        await self._fire(
            hold.school, hold.school_day, used, result.school_spent + result.school_reserved
        )

    async def _retry_commit(self, hold: Hold, actual: int, audio_ms: int) -> None:
        """Without a journal (tests of the service alone): retry in memory."""
        for delay in COMMIT_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                await self._commit(hold, actual, audio_ms)
                log.info("budget.commit_recovered", school_id=hold.school.school_id)
                return
            except LEDGER_ERRORS:
                continue
        log.critical("budget.commit_lost", school_id=hold.school.school_id, actual_micro=actual)

    async def release(self, hold: Hold) -> None:
        if hold.reservation_id is None or self.ledger is None:
            return
        try:
            await self.ledger.release(hold.reservation_id)
        except LEDGER_ERRORS:
            pass  # the lease reclaims it

    # -- alerts -----------------------------------------------------------------

    async def _fire(self, school: SchoolBudget, day: str, used: float, committed: int) -> None:
        """Fire the thresholds ``used`` crossed; ``committed`` is spent + reserved (what is
        not left)."""
        if self.ledger is None:
            return
        due = [
            t
            for t in school.alert_thresholds
            if used >= t and (school.school_id, day, t) not in self._fired_seen
        ]
        if not due:
            return
        fired_at = self._clock().isoformat()
        remaining = usd(max(0, school.daily_limit_micro - committed))
        try:
            fired = await self.ledger.fire_alerts(
                school.school_id, day, due, {"fired_at": fired_at, "percent_used": round(used, 2)}
            )
        except LEDGER_ERRORS:
            return
        for t in due:
            self._fired_seen.add((school.school_id, day, t))
        for threshold in fired:
            self._metrics.budget_alerts.labels(threshold=str(threshold)).inc()
            alert = AlertFired(
                school.school_id, day, threshold, round(used, 2), remaining, fired_at
            )
            log.warning(
                "budget.alert_fired",
                school_id=school.school_id,
                threshold=threshold,
                percent_used=alert.percent_used,
            )
            for listener in self._listeners:
                with contextlib.suppress(Exception):
                    await listener(alert)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop background work; charges not yet taken stay in the journal for the next start."""
        if self._replayer is not None:
            self._replayer.cancel()
            self._background.add(self._replayer)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
