"""What happens when a school crosses a budget threshold: audit, the school's sessions on
every replica, webhook."""

from __future__ import annotations

import contextlib

from gateway.budget.alerting import AlertFired
from gateway.errors import LedgerUnavailable
from gateway.observability.logging import get_logger
from gateway.runtime.gateway import Gateway

log = get_logger("gateway.alerts")


class AlertDispatcher:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_alert(self, alert: AlertFired) -> None:
        gateway = self._gateway
        gateway.audit.record(
            "budget.alert_fired",
            school_id=alert.school_id,
            threshold=alert.threshold,
            date=alert.day,
            percent_used=alert.percent_used,
        )
        if alert.threshold >= 100:
            gateway.audit.record(
                "budget.exceeded",
                school_id=alert.school_id,
                date=alert.day,
                percent_used=alert.percent_used,
            )
        notice = {
            "school_id": alert.school_id,
            "percent_used": alert.percent_used,
            "threshold": alert.threshold,
            "remaining_usd": alert.remaining_usd,
        }
        fleet = gateway.fleet
        published = False
        if fleet is not None:
            with contextlib.suppress(LedgerUnavailable):
                await fleet.notify(notice)  # every replica's sessions, this one's included
                published = True
        if not published:
            gateway.registry.budget_notice(notice)  # at least this replica's
        school = await gateway.budget.school(alert.school_id)
        if school.webhook_url:
            gateway.webhooks.send(
                school.webhook_url,
                {
                    "text": (
                        f"stt-gateway: school {alert.school_id} has used "
                        f"{alert.percent_used:.1f}% of its daily transcription budget "
                        f"(threshold {alert.threshold}%) on {alert.day}; "
                        f"${alert.remaining_usd:.2f} remaining."
                    ),
                    "school_id": alert.school_id,
                    "date": alert.day,
                    "threshold": alert.threshold,
                    "percent_used": alert.percent_used,
                    "remaining_usd": alert.remaining_usd,
                    "fired_at": alert.fired_at,
                },
            )
