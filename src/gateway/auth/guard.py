"""Denied requests, at one place: the failed-authentication limit and the audit records.

Every route that authenticates (HTTP API, WebSocket handshake, passthrough)
calls :meth:`AuthGuard.denied` on a refusal and :meth:`AuthGuard.blocked_for`
before answering an invalid token, so a flood of bad tokens becomes a few
aggregated ``auth.denied`` records and 429s, not one record per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.auth.failures import Denial, DenialAggregator, FailureLimiter
from gateway.observability.audit import SYSTEM, AuditTrail
from gateway.observability.logging import get_logger

log = get_logger("gateway.auth")
WINDOW_SECONDS = 60.0


class AuthGuard:
    def __init__(
        self,
        audit: AuditTrail,
        *,
        failures_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audit = audit
        self._clock = clock
        self.limiter = FailureLimiter(failures_per_minute, WINDOW_SECONDS)
        self.aggregator = DenialAggregator(WINDOW_SECONDS)
        self.refused = 0

    def blocked_for(self, address: str) -> float:
        """Seconds to wait before ``address`` may fail again (0: not blocked)."""
        wait = self.limiter.blocked_for(address, self._clock())
        if wait:
            self.refused += 1
        return wait

    def denied(
        self,
        address: str,
        reason: str,
        route: str,
        *,
        who: dict[str, str] | str = SYSTEM,
        school_id: str | None = None,
        failed_auth: bool = True,
    ) -> None:
        """Count a refusal (``failed_auth``: a bad token, which the limit counts) and audit it."""
        now = self._clock()
        if failed_auth:
            self.limiter.failed(address, now)
        sub, role = (who.get("sub", ""), who.get("role", "")) if isinstance(who, dict) else ("", "")
        key = (address, reason, route, sub, role, school_id or "")
        self._write(self.aggregator.denied(key, now))

    def flush(self, *, everything: bool = False) -> None:
        self._write(self.aggregator.flush(self._clock(), everything=everything))

    def _write(self, denials: list[Denial]) -> None:
        for denial in denials:
            address, reason, route, sub, role, school_id = denial.key
            fields: dict[str, object] = {"reason": reason, "route": route, "source": address}
            if denial.summary:
                fields.update(
                    count=denial.count,
                    seconds=round(denial.last_at - denial.first_at, 3),
                    aggregated=True,
                )
            self._audit.record(
                "auth.denied",
                who={"sub": sub, "role": role} if sub and role else SYSTEM,
                school_id=school_id or None,
                **fields,
            )
