"""The circuit breaker around the upstream: aiobreaker plus a monotonic gate.

aiobreaker 1.2 decides open → half-open by comparing ``datetime.utcnow()``
with a time it also stores in UTC, but its ``opens_at`` / ``time_remaining``
helpers mix in local time, and half-open lets every concurrent caller through.
:class:`CircuitGuard` therefore keeps its own monotonic clock for the reset
timeout, moves the breaker to half-open itself and lets exactly one probe
through at a time; callers that find the circuit open are *held* (they wait,
they do not fail) until a probe succeeds. Listeners are synchronous, so state
changes only update metrics and wake waiters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from aiobreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerListener
from aiobreaker.state import CircuitBreakerState

from gateway.errors import CircuitOpen, UpstreamError

T = TypeVar("T")

_STATE_NAMES = {
    CircuitBreakerState.CLOSED: "closed",
    CircuitBreakerState.OPEN: "open",
    CircuitBreakerState.HALF_OPEN: "half_open",
}


def _does_not_trip(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and not exc.trips_breaker


class CircuitGuard:
    """Admits upstream calls according to the breaker; holds callers while open."""

    def __init__(
        self,
        *,
        fail_max: int,
        reset_seconds: float,
        on_transition: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._on_transition = on_transition
        self._opened_at = 0.0
        self._probing = False
        self._changed = asyncio.Event()
        self._breaker = CircuitBreaker(
            fail_max=fail_max,
            timeout_duration=timedelta(seconds=reset_seconds),
            exclude=[_does_not_trip],
            listeners=[_Listener(self)],
        )

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        return _STATE_NAMES[self._breaker.current_state]

    def seconds_until_probe(self) -> float:
        if self._breaker.current_state is not CircuitBreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    async def call(
        self, func: Callable[[], Awaitable[T]], on_hold: Callable[[], None] | None = None
    ) -> T:
        """Run ``func`` through the breaker, waiting while the circuit is open."""
        held = False
        while True:
            state = self._breaker.current_state
            if state is CircuitBreakerState.CLOSED:
                return await self._invoke(func)
            wait = self.seconds_until_probe()
            if wait <= 0 and not self._probing:
                self._probing = True
                try:
                    if self._breaker.current_state is CircuitBreakerState.OPEN:
                        self._breaker.half_open()
                    return await self._invoke(func)
                finally:
                    self._probing = False
                    self._wake()
            if not held:
                held = True
                if on_hold is not None:
                    on_hold()
            await self._wait(wait if wait > 0 else None)

    async def _invoke(self, func: Callable[[], Awaitable[T]]) -> T:
        try:
            result: T = await self._breaker.call_async(func)
        except CircuitBreakerError as exc:
            if isinstance(exc.__cause__, UpstreamError):
                raise exc.__cause__ from None
            raise CircuitOpen("circuit open") from None
        return result

    async def _wait(self, timeout: float | None) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _transitioned(self, new_state: CircuitBreakerState) -> None:
        if new_state is CircuitBreakerState.OPEN:
            self._opened_at = self._clock()
        if self._on_transition is not None:
            self._on_transition(_STATE_NAMES[new_state])
        self._wake()


class _Listener(CircuitBreakerListener):  # type: ignore[misc, unused-ignore]
    def __init__(self, guard: CircuitGuard) -> None:
        self._guard = guard

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        new_state = new.state
        if old is not None and old.state is new_state and new_state is not CircuitBreakerState.OPEN:
            return
        self._guard._transitioned(new_state)
