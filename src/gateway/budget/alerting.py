"""Budget alerts: each threshold of a school's day fires once, fleet-wide.

The ledger decides *once* (``HSETNX`` per threshold and day, on every replica);
this process remembers what it has seen so a crossed threshold costs no Redis
call on every later window, and hands each fired alert to its listeners
(the alerts feed and the webhooks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.budget.ledger import Ledger
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.budget.settlement import LEDGER_ERRORS
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


class ThresholdAlerts:
    """The thresholds a school's day has crossed, fired once each."""

    def __init__(self, metrics: Metrics, clock: Callable[[], datetime]) -> None:
        self._metrics = metrics
        self._clock = clock
        self._seen: set[tuple[str, str, int]] = set()
        self.listeners: list[AlertListener] = []

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
        except LEDGER_ERRORS:
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
            for listener in self.listeners:
                with contextlib.suppress(Exception):
                    await listener(alert)
