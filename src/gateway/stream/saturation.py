"""Whether this process is saturated (pure): its event loop's lag, smoothed, with hysteresis.

A periodic timer measures how late the loop runs it (:mod:`gateway.runtime.looplag`): the
lag is what every stream's frames, windows and messages wait before the process gets to
them, so it rises with the admitted streams' latency (docs/Scaling.md, "Admission": why
this signal and not CPU or work in flight). The lag is smoothed (an exponential average
over ``smoothing_seconds``), and one measurement counts for at most :data:`SAMPLE_CAP`
times the saturation bound, so one slow turn — a full garbage collection (60–120 ms with
200 streams open), a model load — moves it by a few milliseconds, while a loop late turn
after turn (an overloaded process's queue) still reaches the bound within a second. The
process becomes saturated when the smoothed lag reaches
``enter_seconds``; it reopens once the lag stayed at or under ``leave_seconds`` for
``hold_seconds``: admission does not flap between the two. The number of streams open
when it last became saturated is what this process could serve — the bound for the
schools' fair share until the load falls below it. *Near* saturation (the lag past the
reopening bound, or the streams open close to that number) new streams are paced
(:mod:`gateway.stream.pacing`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: Near saturation from this share of the streams open when the process last saturated.
NEAR_CAPACITY = 0.9
#: One measurement counts for at most this many times the saturation bound.
SAMPLE_CAP = 3.0


@dataclass(frozen=True, slots=True)
class SaturationLimits:
    """``enter_seconds`` 0 never saturates (admission by ``MAX_SESSIONS`` only)."""

    enter_seconds: float = 0.008
    leave_seconds: float = 0.003
    hold_seconds: float = 5.0
    smoothing_seconds: float = 2.0
    #: The process's first seconds (imports, connections, a model loading) decide nothing:
    #: until its loop stayed calm for ``calm_seconds``, and at most this long.
    warmup_seconds: float = 5.0
    calm_seconds: float = 1.0


class Saturation:
    def __init__(self, limits: SaturationLimits) -> None:
        self.limits = limits
        #: The smoothed lag, seconds.
        self.lag = 0.0
        self.saturated = False
        #: Streams open when the process last became saturated (None: not yet, or the
        #: load fell well below it since).
        self.capacity: int | None = None
        self._last: float | None = None
        self._first: float | None = None
        self._warm = False
        self._calm_since: float | None = None

    def observe(self, lag: float, now: float, streams: int) -> bool:
        """One measurement: the loop ran a timer ``lag`` seconds late at ``now`` with
        ``streams`` open. Returns whether ``saturated`` changed."""
        limits = self.limits
        lag = max(0.0, lag)
        if limits.enter_seconds > 0:  # one long turn is not a load (module docstring)
            lag = min(lag, SAMPLE_CAP * limits.enter_seconds)
        if not self._warm and not self._warmed_up(lag, now):
            return False  # starting up: not what the streams will see
        if self._last is not None:  # the first one only starts the clock: the smoothed
            dt = max(0.0, now - self._last)  # lag starts calm, never at one raw sample
            self.lag += (lag - self.lag) * (1.0 - math.exp(-dt / limits.smoothing_seconds))
        self._last = now
        if not self.saturated:
            if limits.enter_seconds > 0 and self.lag >= limits.enter_seconds:
                self.saturated = True
                self.capacity = streams
                self._calm_since = None
                return True
            if self.capacity is not None and streams < self.capacity // 2:
                self.capacity = None  # the load fell: what it could serve is measured again
            return False
        if self.lag > limits.leave_seconds:
            self._calm_since = None
            return False
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since >= limits.hold_seconds:
            self.saturated = False
            self._calm_since = None
            return True
        return False

    def _warmed_up(self, lag: float, now: float) -> bool:
        """Whether the start-up is over: the loop calm (at or under the reopening bound)
        for ``calm_seconds``, or ``warmup_seconds`` gone by. A process that takes streams
        at once is measured from its first calm second, not five seconds later."""
        limits = self.limits
        if self._first is None:
            self._first = now
        if lag > limits.leave_seconds:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        calm = self._calm_since is not None and now - self._calm_since >= limits.calm_seconds
        if calm or now - self._first >= limits.warmup_seconds:
            self._warm, self._calm_since = True, None
        return self._warm

    def near(self, streams: int) -> bool:
        """Whether a process not saturated is close to it with ``streams`` open: its lag
        past the reopening bound, or ``streams`` near what it served when it saturated."""
        limits = self.limits
        if limits.enter_seconds <= 0:
            return False
        if self.saturated or self.lag > limits.leave_seconds:
            return True
        return self.capacity is not None and streams >= NEAR_CAPACITY * self.capacity


def jittered(retry_after: float, rand: Callable[[], float]) -> float:
    """``retry_after`` spread over [1×, 2×) so refused classrooms do not come back in step."""
    return round(retry_after * (1.0 + rand()), 1)
