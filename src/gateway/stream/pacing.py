"""How fast new streams are let in near saturation (pure): a few a second, not a burst.

A stream's load shows in the loop's lag only after it has run a while — its frames at
once, its first window seconds later (its upstream call, its charge, its Transcript). A
process that admits every stream until the smoothed lag reaches the bound admits the
burst of the last few seconds on top of what it can serve (docs/Scaling.md,
"Admission": 1,000 streams arriving at 270 a second, 748 admitted, a third of their
windows dropped). So once the process is *near* saturation — its smoothed lag past the
reopening bound, or its open streams close to what it served when it last saturated —
new streams are let in at ``share_per_second`` of the open streams a second (at least
``min_per_second``), each one's load showing before many more join. Far from saturation
nothing is paced: a fresh process takes a whole school at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PaceLimits:
    #: New streams a second near saturation, as a share of the streams open.
    share_per_second: float = 0.02
    #: ... and never fewer than this many a second.
    min_per_second: float = 2.0


class Pace:
    """A token bucket that fills at the pace while near saturation (at most a second's
    worth saved up) and is set aside while far from it."""

    def __init__(self, limits: PaceLimits | None = None) -> None:
        self.limits = limits or PaceLimits()
        self._tokens: float | None = None
        self._last = 0.0

    def rate(self, streams: int) -> float:
        """New streams a second near saturation with ``streams`` open."""
        return max(self.limits.min_per_second, self.limits.share_per_second * streams)

    def admit(self, now: float, streams: int, near: bool) -> bool:
        """Whether one more stream may start at ``now`` with ``streams`` open (taking its
        place if so); ``near``: whether the process is near saturation."""
        if not near:
            self._tokens = None  # far from it: nothing paced, nothing saved up
            return True
        rate = self.rate(streams)
        if self._tokens is None:
            self._tokens = 1.0  # the first stream near saturation goes in
        else:
            earned = max(0.0, now - self._last) * rate
            self._tokens = min(max(1.0, rate), self._tokens + earned)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
