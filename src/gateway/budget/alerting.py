"""Budget alerts: each threshold of a school's day fires once, fleet-wide.

The ledger decides *once* (``HSETNX`` per threshold and day, on every replica);
this process remembers what it has seen so a crossed threshold costs no Redis
call on every later window, and emits each fired alert as an event: the
listeners registered at wiring time (audit, the school's sessions, its webhook)
run in tasks of their own, off the window's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.budget.ledger import Ledger
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.errors import LedgerUnavailable
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics

log = get_logger("gateway.budget")


@dataclass(frozen=True, slots=True)
class AlertFired:
    school_id: str
    day: str
    threshold: int
    percent_used: float
    remaining_usd: float
    fired_at: str


AlertListener = Callable[[AlertFired], Awaitable[None]]


class AlertEvents:
    """Fired alerts, handed to the listeners registered at wiring time: each listener runs in
    a task of its own, so a slow webhook or Redis never holds the window that crossed."""

    def __init__(self, listeners: list[AlertListener] | None = None) -> None:
        self._listeners = list(listeners or [])
        self._running: set[asyncio.Task[None]] = set()

    def subscribe(self, listener: AlertListener) -> None:
        self._listeners.append(listener)

    def emit(self, alert: AlertFired) -> None:
        for listener in self._listeners:
            task = asyncio.create_task(_heard(listener, alert))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def close(self) -> None:
        """Let the listeners still running finish (an alert is never half told)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


async def _heard(listener: AlertListener, alert: AlertFired) -> None:
    try:
        await listener(alert)
    except Exception as exc:
        log.error("budget.alert_listener_failed", error=type(exc).__name__)


class ThresholdAlerts:
    """The thresholds a school's day has crossed, fired once each."""

    def __init__(
        self, metrics: Metrics, clock: Callable[[], datetime], events: AlertEvents
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._seen: set[tuple[str, str, int]] = set()
        self._events = events

    async def fire(
        self, ledger: Ledger, school: SchoolBudget, day: str, used: float, committed: int
    ) -> None:
        """Fire the thresholds ``used`` crossed; ``committed`` is spent + reserved (what is
        not left)."""
        due = [
            t
            for t in school.alert_thresholds
            if used >= t and (school.school_id, day, t) not in self._seen
        ]
        if not due:
            return
        fired_at = self._clock().isoformat()
        remaining = usd(max(0, school.daily_limit_micro - committed))
        try:
            fired = await ledger.fire_alerts(
                school.school_id, day, due, {"fired_at": fired_at, "percent_used": round(used, 2)}
            )
        except LedgerUnavailable:
            return
        for t in due:
            self._seen.add((school.school_id, day, t))
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
            self._events.emit(alert)
