"""The upstream service: concurrency limit, breaker, retries, stats, metrics.

:meth:`SttService.transcribe` either returns a result or raises the
:class:`~gateway.errors.UpstreamError` that decides the window's drop reason.
While the circuit is open the call is held (it waits); the session's backlog
bound and the shutdown grace period are what end a hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gateway.errors import RateLimited, UpstreamAuthRejected, UpstreamError
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stt.adaptive import AdaptiveWindow, UpstreamStats
from gateway.stt.breaker import CircuitGuard
from gateway.stt.retry import backoff_delay
from gateway.stt.rpm import RpmLimiter
from gateway.stt.transcriber import Transcriber, TranscriptionRequest, TranscriptionResult

log = get_logger("gateway.upstream")
#: At most one error line per this many seconds while the upstream refuses the API key.
AUTH_LOG_INTERVAL = 60.0


class UpstreamEvents(Protocol):
    """What a session wants to hear about while its window is being transcribed."""

    def rate_limited(self) -> None: ...

    def held(self) -> None: ...

    def credentials_rejected(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    max_concurrency: int
    max_retries: int
    fail_max: int
    reset_seconds: float
    window_seconds: float
    window_max_seconds: float


class SttService:
    def __init__(
        self,
        transcriber: Transcriber,
        config: UpstreamConfig,
        metrics: Metrics,
        *,
        rpm: RpmLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.transcriber = transcriber
        self.config = config
        self._metrics = metrics
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self.guard = CircuitGuard(
            fail_max=config.fail_max,
            reset_seconds=config.reset_seconds,
            on_transition=self._on_transition,
            clock=clock,
        )
        self.stats = UpstreamStats(clock=clock)
        self.adaptive = AdaptiveWindow(
            config.window_seconds, config.window_max_seconds, clock=clock
        )
        self.rpm = rpm
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None
        #: The upstream's last answer refused our credentials (cleared by the next success).
        self.credentials_refused: str | None = None
        self._clock = clock
        self._auth_logged_at = -float("inf")
        metrics.window_seconds.set(self.adaptive.current)

    @property
    def window_seconds(self) -> float:
        return self.adaptive.current

    def _on_transition(self, state: str) -> None:
        self._metrics.set_circuit_state(state)
        self._metrics.circuit_transitions.labels(to=state).inc()

    def _held(self, events: UpstreamEvents) -> Callable[[], None]:
        def hold() -> None:
            self._metrics.calls_not_permitted.inc()
            events.held()

        return hold

    async def transcribe(
        self, request: TranscriptionRequest, events: UpstreamEvents
    ) -> TranscriptionResult:
        attempt = 0
        on_hold = self._held(events)
        while True:
            try:
                return await self.guard.call(lambda: self._attempt(request), on_hold=on_hold)
            except UpstreamError as exc:
                if isinstance(exc, UpstreamAuthRejected):
                    events.credentials_rejected()
                if not exc.retryable:
                    raise
                attempt += 1
                if attempt > self.config.max_retries:
                    if exc.trips_breaker and self.guard.state != "closed":
                        continue  # held until the upstream is back
                    raise
                if isinstance(exc, RateLimited):
                    events.rate_limited()
                await self._sleep(backoff_delay(attempt, exc.retry_after))

    async def _attempt(self, request: TranscriptionRequest) -> TranscriptionResult:
        model = request.model
        async with self._semaphore:
            if self.rpm is not None:
                await self.rpm.acquire()
            started = time.perf_counter()
            try:
                result = await self.transcriber.transcribe(request)
            except UpstreamError as exc:
                self._record(model, exc.outcome, started)
                self.last_error = f"{exc.outcome}: {exc.message}"
                if isinstance(exc, UpstreamAuthRejected):
                    self._credentials_refused(exc)
                raise
            self._record(model, "ok", started)
            self.last_success_at = datetime.now(UTC)
            self.credentials_refused = None
            return result

    def _credentials_refused(self, exc: UpstreamAuthRejected) -> None:
        self.credentials_refused = exc.message
        self._metrics.upstream_auth_failures.inc()
        now = self._clock()
        if now - self._auth_logged_at >= AUTH_LOG_INTERVAL:
            self._auth_logged_at = now
            log.error("upstream.credentials_refused", problem=exc.message)

    def _record(self, model: str, outcome: str, started: float) -> None:
        self._metrics.upstream_requests.labels(model=model, outcome=outcome).inc()
        self._metrics.upstream_duration.labels(model=model).observe(time.perf_counter() - started)
        self.stats.record(outcome == "rate_limited")
        self._metrics.window_seconds.set(self.adaptive.evaluate(self.stats))

    async def close(self) -> None:
        await self.transcriber.close()
