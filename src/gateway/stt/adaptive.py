"""Recent upstream outcomes and the adaptive window length (pure, clock injected).

Rule: every evaluation looks at the last ``horizon`` seconds (60 s). When at
least ``min_requests`` requests were made and 20 % or more of them were
answered 429, the window grows by ×1.5 (up to ``STT_WINDOW_MAX_SECONDS``):
longer windows mean fewer requests per minute for the same audio. When fewer
than 5 % were 429, it shrinks by ÷1.5 back toward ``STT_WINDOW_SECONDS``.
Between the two it holds. It changes at most once per ``hold`` seconds (10 s)
so one burst does not swing it back and forth.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

GROW_RATIO = 0.2
SHRINK_RATIO = 0.05
STEP = 1.5


class _Span:
    """The events of the last ``horizon`` seconds, with running counts (O(1) amortised)."""

    __slots__ = ("events", "horizon", "limited")

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.events: deque[tuple[float, bool]] = deque()
        self.limited = 0

    def add(self, t: float, is_429: bool) -> None:
        self.events.append((t, is_429))
        self.limited += is_429

    def trim(self, now: float) -> None:
        events, oldest = self.events, now - self.horizon
        while events and events[0][0] < oldest:
            self.limited -= events.popleft()[1]


class UpstreamStats:
    """Timestamps of recent upstream answers and which of them were 429.

    Each horizon asked for keeps its own running counts, so recording an answer and
    asking for the counts cost the same with 10 or 10,000 answers a minute.
    """

    def __init__(self, retention: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._all = _Span(retention)
        self._spans: dict[float, _Span] = {}

    def record(self, rate_limited: bool) -> None:
        now = self._clock()
        for span in (self._all, *self._spans.values()):
            span.add(now, rate_limited)
            span.trim(now)

    def counts(self, horizon: float) -> tuple[int, int]:
        """(requests, 429s) over the last ``horizon`` seconds (at most the retention)."""
        now = self._clock()
        span = self._spans.get(horizon)
        if span is None:
            span = self._spans[horizon] = _Span(min(horizon, self._all.horizon))
            for t, is_429 in self._all.events:
                span.add(t, is_429)
        span.trim(now)
        return len(span.events), span.limited

    def rate_limited_ratio(self, horizon: float) -> float:
        total, limited = self.counts(horizon)
        return limited / total if total else 0.0


class AdaptiveWindow:
    """The effective window length, adapted to the recent 429 ratio."""

    def __init__(
        self,
        base: float,
        maximum: float,
        *,
        horizon: float = 60.0,
        hold: float = 10.0,
        min_requests: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.maximum = maximum
        self.current = base
        self._horizon = horizon
        self._hold = hold
        self._min_requests = min_requests
        self._clock = clock
        self._changed_at = -float("inf")

    def evaluate(self, stats: UpstreamStats) -> float:
        now = self._clock()
        if now - self._changed_at < self._hold:
            return self.current
        total, limited = stats.counts(self._horizon)
        ratio = limited / total if total else 0.0
        new = self.current
        if total >= self._min_requests and ratio >= GROW_RATIO:
            new = min(self.maximum, self.current * STEP)
        elif ratio < SHRINK_RATIO:
            new = max(self.base, self.current / STEP)
        if new != self.current:
            self.current = round(new, 3)
            self._changed_at = now
        return self.current
