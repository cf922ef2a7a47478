"""Budget enforcement: reserve before a window goes upstream, commit or release after.

Modes: ``strict`` refuses when a scope is full and when the ledger is
unreachable; ``advisory`` never refuses (it logs and counts what would have
been refused, and still records spend); ``disabled`` makes no ledger calls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from gateway.budget.alerting import AlertEvents, ThresholdAlerts
from gateway.budget.journal import CommitJournal
from gateway.budget.ledger import CommitResult, Ledger, ReserveResult, ScopeDay
from gateway.budget.policy import Policy, SchoolBudget
from gateway.budget.scopes import day_in, percent, scopes_for
from gateway.budget.settlement import Charge, Hold, Settlement, overspent, pending_commit
from gateway.budget.stored_settings import StoredSettings
from gateway.errors import BudgetRefused, BudgetUnavailable, LedgerUnavailable
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics

log = get_logger("gateway.budget")

RELEASE_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60, 120)


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
        events: AlertEvents | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.ledger = ledger
        self.mode = mode
        self._metrics = metrics
        self._lease_ms = int(lease_seconds * 1000)
        self._clock = clock
        self._stored = StoredSettings()
        self._percent: dict[str, float] = {}
        self.events = events or AlertEvents()
        self.alerts = ThresholdAlerts(metrics, clock, self.events)
        self._background: set[asyncio.Task[Any]] = set()
        self.journal = journal
        self._replayer: asyncio.Task[None] | None = None
        self._settlement = Settlement(self._commit, self.school, metrics)
        #: Waits between attempts to release a hold whose reservation call failed.
        self.release_retry_delays: tuple[float, ...] = RELEASE_RETRY_DELAYS

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled" and self.ledger is not None

    # -- settings -----------------------------------------------------------

    async def school(
        self, school_id: str, district_claim: str | None = None, *, for_window: bool = False
    ) -> SchoolBudget:
        """The school's settings: its policy, then its stored settings (read at most every
        ``OVERRIDE_CACHE_SECONDS``). ``for_window``: a reservation follows, and it returns the
        stored settings too (:meth:`reserve` re-reserves if they changed), so any cached
        copy will do."""
        base = self.policy.school(school_id, district_claim)
        if not self.enabled:
            return base
        assert self.ledger is not None
        return base.with_overrides(await self._stored.values(self.ledger, school_id, for_window))

    def _settings_changed_since(self, school: SchoolBudget, raw: str | None) -> SchoolBudget | None:
        """The school as its stored settings ``raw`` (returned by a reservation) make it, if
        they differ from what this replica had; None if they are the same."""
        if self._stored.same(school.school_id, raw):
            return None
        values = self._stored.remember(school.school_id, raw)
        fresh = self.policy.school(school.school_id, school.district_id).with_overrides(values)
        return None if fresh == school else fresh

    async def settings_changed(self, school_id: str) -> SchoolBudget:
        """Re-read a school's settings after a change and recompute its state from the ledger:
        a refusal under the old limit no longer marks today ``exceeded`` and the downgrade
        follows the new limit at once (other replicas follow on their next reservation)."""
        self._stored.forget(school_id)
        school = await self.school(school_id)
        if self.ledger is not None:
            day = day_in(school.timezone, self._clock())
            counters = await self.ledger.clear_refusals(f"school:{school_id}", day)
            self._percent[school_id] = percent(
                counters.get("spent", 0) + counters.get("reserved", 0), school.daily_limit_micro
            )
        return school

    def model_for(self, school_id: str, requested: str) -> str:
        """The requested model, or a cheaper one once the school passed a downgrade step."""
        return self.policy.downgraded_model(requested, self._percent.get(school_id, 0.0))

    # -- lifecycle ------------------------------------------------------------

    async def reserve(
        self, school: SchoolBudget, model: str, seconds: float, *, _retried: bool = False
    ) -> Hold:
        now = self._clock()
        amount = self.policy.pricing.cost_micro(model, seconds)
        scopes = scopes_for(self.policy, school, model, now)
        school_day = scopes[-1].day
        if not self.enabled:
            return Hold(None, school, school_day, model, amount)
        assert self.ledger is not None
        ledger = self.ledger
        now_ms = int(now.timestamp() * 1000)
        rid = uuid.uuid4().hex

        async def hold_on(on: list[ScopeDay]) -> ReserveResult:
            return await ledger.reserve(
                scopes=on,
                amount_micro=amount,
                school_id=school.school_id,
                model=model,
                now_ms=now_ms,
                lease_ms=self._lease_ms,
                rid=rid,
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
        except LedgerUnavailable as exc:
            return self._unreachable(exc, rid, Hold(None, school, school_day, model, amount))
        changed = self._settings_changed_since(school, result.settings)
        if changed is not None and not _retried:
            # Settings changed on another replica since this one read them: this
            # reservation used the old limits; take it back and reserve under the new ones.
            if result.reservation_id is not None:
                await self.release(Hold(result.reservation_id, school, school_day, model, amount))
            return await self.reserve(changed, model, seconds, _retried=True)
        self._percent[school.school_id] = percent(
            result.school_spent + result.school_reserved, school.daily_limit_micro
        )
        if not result.ok:
            self._refused(school, school_day, result)
        self._metrics.budget_reservations.labels(outcome="ok").inc()
        return Hold(result.reservation_id, school, school_day, model, amount, result.day_keys)

    def _unreachable(self, exc: LedgerUnavailable, rid: str, bypass: Hold) -> Hold:
        """The reservation call failed: strict mode refuses, advisory goes on unmetered."""
        # Redis may still apply the reservation (it was paused, not gone): give it back
        # as soon as Redis answers, rather than when its lease runs out.
        self._spawn(self._release_failed(rid))
        if self.mode == "strict":
            self._metrics.budget_reservations.labels(outcome="error").inc()
            school_id = bypass.school.school_id
            log.error("budget.ledger_unreachable", school_id=school_id, error=exc.error)
            raise BudgetUnavailable("the budget ledger is unreachable") from None
        self._metrics.budget_reservations.labels(outcome="bypassed").inc()
        return bypass

    def _refused(self, school: SchoolBudget, day: str, result: ReserveResult) -> NoReturn:
        self._metrics.budget_reservations.labels(outcome="exceeded").inc()
        self._percent[school.school_id] = 100.0
        log.warning("budget.exceeded", school_id=school.school_id, scope=result.refused_scope)
        committed = result.school_spent + result.school_reserved
        self._spawn(self._fire(school, day, 100.0, committed))
        raise BudgetRefused(result.refused_scope or "school")

    def charge_for(self, hold: Hold, seconds: float) -> Charge:
        """What billing ``seconds`` against ``hold`` costs, to be settled later."""
        return Charge(hold, seconds, self.policy.pricing.cost_micro(hold.model, seconds))

    async def commit(self, hold: Hold, seconds: float) -> int:
        """Charge the billed ``seconds``; returns the cost in micro-dollars."""
        charge = self.charge_for(hold, seconds)
        await self.settle(charge)
        return charge.actual_micro

    async def settle(self, charge: Charge) -> None:
        """Charge ``charge`` now; one the ledger cannot take is journaled and replayed."""
        if charge.hold.reservation_id is None or self.ledger is None:
            return
        try:
            await self._commit(charge.hold, charge.actual_micro, charge.audio_ms)
        except LedgerUnavailable:
            self.defer(charge)
        except asyncio.CancelledError:  # the gateway stops: the next start replays it
            self.defer(charge)
            raise

    def defer(self, charge: Charge) -> None:
        """The charge could not be confirmed: journal it durably and replay it until taken
        (a commit is idempotent per reservation: one that did land is not charged twice)."""
        hold = charge.hold
        if hold.reservation_id is None or self.ledger is None:
            return
        log.error("budget.commit_deferred", school_id=hold.school.school_id)
        entry = (hold, charge.actual_micro, charge.audio_ms)
        if self.journal is None:
            self._spawn(self._settlement.retry(*entry))
            return
        self.journal.add(pending_commit(*entry))
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
        if self.journal is not None and self.ledger is not None:
            await self._settlement.replay(self.journal)

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
        self.charged(hold, actual, result)

    def charged(self, hold: Hold, actual: int, result: CommitResult) -> None:
        """What follows a charge the ledger took: overspend counted, the school's use, alerts."""
        if result.status != 1:
            return
        if result.overspend_micro:
            overspent(self._metrics, hold, actual, result.overspend_micro)
        used = percent(result.school_spent, hold.school.daily_limit_micro)
        self._percent[hold.school.school_id] = used
        committed = result.school_spent + result.school_reserved
        self._spawn(self._fire(hold.school, hold.school_day, used, committed))

    async def release(self, hold: Hold) -> None:
        if hold.reservation_id is None or self.ledger is None:
            return
        try:
            await self.ledger.release(hold.reservation_id)
        except LedgerUnavailable:
            pass  # the lease reclaims it

    async def _release_failed(self, rid: str) -> None:
        """Release a hold whose reservation call failed, retrying until Redis answers (a
        release that comes first leaves a tombstone, so the late reservation holds nothing)."""
        assert self.ledger is not None
        for delay in self.release_retry_delays:
            try:
                await self.ledger.release(rid)
                return
            except LedgerUnavailable:
                await asyncio.sleep(delay)

    async def _fire(self, school: SchoolBudget, day: str, used: float, committed: int) -> None:
        if self.ledger is not None:
            await self.alerts.fire(self.ledger, school, day, used, committed)

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
