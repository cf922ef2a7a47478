"""How fast new streams are let in (pure): a slow start, and a trickle near saturation.

A stream's load shows in the loop's lag only after it has run a while — its frames at
once, its first window seconds later — and starting it costs several times a second of
serving it (the handshake, the group's claim, the kept state, the audit line:
docs/Scaling.md, "Admission"). A process that admits every stream until the smoothed lag
reaches the bound admits the burst of the last seconds on top of what it can serve, and
the burst's own start-up work is what closes admission. So new streams come in at a pace,
as a token bucket:

- far from saturation, a *slow start*: ``start_per_second`` (``burst`` at once: a fresh
  process takes whole classrooms);
- *near* saturation — the smoothed lag past the reopening bound, or the streams open close
  to what the process served when it last saturated — a trickle of ``share_per_second``
  of the streams open a second (at least ``min_per_second``), so each one's load shows
  before many more join.

A process whose pace refused a stream within :data:`REFUSING_SECONDS` is *refusing*: its
admission is closed for now as surely as a saturated one's, and readiness says so.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A pace refusal keeps the process *refusing* this long (the pace refills within it).
REFUSING_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class PaceLimits:
    #: Far from saturation: new streams a second (a process is one core, and a start
    #: costs it the same whatever it serves) ...
    start_per_second: float = 25.0
    #: ... and as many as this at once.
    burst: float = 50.0
    #: Near saturation: new streams a second as a share of the streams open ...
    share_per_second: float = 0.02
    #: ... and never fewer than this many a second.
    min_per_second: float = 2.0


class Pace:
    def __init__(self, limits: PaceLimits | None = None) -> None:
        self.limits = limits or PaceLimits()
        self._tokens: float | None = None
        self._last = 0.0
        self._refused_at: float | None = None

    def rate(self, streams: int, near: bool) -> float:
        """New streams a second with ``streams`` open."""
        limits = self.limits
        if near:
            return max(limits.min_per_second, limits.share_per_second * streams)
        return limits.start_per_second

    def admit(self, now: float, streams: int, near: bool) -> bool:
        """Whether one more stream may start at ``now`` with ``streams`` open (taking its
        place if so); ``near``: whether the process is near saturation."""
        rate = self.rate(streams, near)
        most = max(1.0, rate) if near else max(self.limits.burst, rate)
        if self._tokens is None:
            self._tokens = 1.0 if near else most  # a fresh process: a burst (or one)
        else:
            earned = max(0.0, now - self._last) * rate
            self._tokens = min(most, self._tokens + earned)
        self._last = now
        if self._tokens < 1.0:
            self._refused_at = now
            return False
        self._tokens -= 1.0
        return True

    def refusing(self, now: float) -> bool:
        """Whether the pace refused a stream within :data:`REFUSING_SECONDS` of ``now``."""
        return self._refused_at is not None and now - self._refused_at < REFUSING_SECONDS
