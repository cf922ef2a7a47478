"""Live sessions: one per (school, group), the MAX_SESSIONS bound, saturation, draining."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.errors import Overloaded, Replaced
from gateway.observability.metrics import Metrics
from gateway.stream.admission import Occupancy, refusal
from gateway.stream.ending import SHUTDOWN, Ending, from_error
from gateway.stream.pacing import Pace
from gateway.stream.saturation import Saturation, SaturationLimits, jittered

RESTART_WINDOW_SECONDS = 300.0
OVERLOADED_RETRY_AFTER = 5.0
#: When a school at its cap (or its fair share) is asked to try again.
SCHOOL_RETRY_AFTER = 10.0
#: When a saturated process asks a new stream to come back (jittered up to twice that).
SATURATED_RETRY_AFTER = 5.0


class StreamSession(Protocol):
    """A live stream, as the registry sees it (the driver in ``web/stream_session.py``)."""

    session_id: str
    school_id: str
    group_id: str
    finished: asyncio.Event

    @property
    def key(self) -> tuple[str, str]: ...
    @property
    def detached(self) -> bool: ...
    def request_end(self, ending: Ending) -> None: ...
    def hand_over(self) -> None: ...
    def presence(self) -> dict[str, Any]: ...
    def budget_alert(
        self, *, percent_used: float, threshold: int, remaining_usd: float
    ) -> None: ...


class SessionRegistry:
    def __init__(
        self,
        max_sessions: int,
        metrics: Metrics,
        saturation: Saturation | None = None,
        rand: Callable[[], float] = random.random,
        pace: Pace | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``saturation``: whether the process can serve one more stream (None: never
        saturated); ``rand``: the jitter of a saturated refusal's ``retry_after``;
        ``pace``: how fast new streams come in near saturation, by ``clock``."""
        self.max_sessions = max_sessions
        self.saturation = saturation or Saturation(SaturationLimits(enter_seconds=0))
        self.pace = pace or Pace()
        self._clock = clock
        self._rand = rand
        self._metrics = metrics
        self._by_key: dict[tuple[str, str], StreamSession] = {}
        self._all: set[StreamSession] = set()
        self._by_id: dict[str, StreamSession] = {}
        self._recently_ended: dict[tuple[str, str], float] = {}
        #: Sessions per school here.
        self._per_school: dict[str, int] = {}
        self.draining = False

    def __len__(self) -> int:
        return len(self._all)

    def sessions(self) -> list[StreamSession]:
        return list(self._all)

    def session(self, session_id: str) -> StreamSession | None:
        return self._by_id.get(session_id)

    def sessions_of_school(self, school_id: str) -> list[StreamSession]:
        return [s for s in self._all if s.school_id == school_id]

    def check_admission(
        self, key: tuple[str, str], cap: int | None = None, *, paced: bool = True
    ) -> None:
        """Raise :class:`Overloaded` when a new stream for ``key`` may not start: draining,
        saturated (with a jittered ``retry_after``), at ``MAX_SESSIONS``, the school at its
        ``cap`` or its fair share of what the process can serve
        (:mod:`gateway.stream.admission`), or faster than the pace — a slow start, a
        trickle near saturation (:mod:`gateway.stream.pacing`; ``paced=False``: a stream
        looked at again after its claim, its place in the pace taken already). A group's
        replacement always may (it adds no load), and so may a resume of a session held
        here."""
        if self.draining:
            self._refused("draining")
            raise Overloaded(
                "the gateway is shutting down; reconnect to another instance",
                retry_after=OVERLOADED_RETRY_AFTER,
            )
        if key in self._by_key:
            return
        if self.saturation.saturated:
            self._refused("saturated")
            raise Overloaded(
                "the gateway is saturated; retry later or elsewhere",
                retry_after=jittered(SATURATED_RETRY_AFTER, self._rand),
            )
        if len(self._all) >= self.max_sessions:
            self._refused("max_sessions")
            raise Overloaded("the gateway is at capacity", retry_after=OVERLOADED_RETRY_AFTER)
        capacity = self.saturation.capacity
        occupancy = Occupancy(
            total=len(self._all),
            max_sessions=min(self.max_sessions, capacity or self.max_sessions),
            school_sessions=self._per_school.get(key[0], 0),
            schools=len(self._per_school),
        )
        why = refusal(occupancy, cap)
        if why is not None:
            self._refused("school_cap")
            raise Overloaded(why, retry_after=SCHOOL_RETRY_AFTER)
        if paced:
            self._paced()

    def admission_closed(self) -> bool:
        """Whether new streams are being refused for the load: saturated, or the pace
        refused one a moment ago (readiness then sends new connections elsewhere)."""
        return self.saturation.saturated or self.pace.refusing(self._clock())

    def _paced(self) -> None:
        if self.saturation.limits.enter_seconds <= 0:
            return  # admission by saturation off: nothing paced either
        streams = len(self._all)
        near = self.saturation.near(streams)
        if not self.pace.admit(self._clock(), streams, near):
            self._refused("saturated")
            why = "is near saturation and lets" if near else "lets"
            rate = self.pace.rate(streams, near)
            raise Overloaded(
                f"the gateway {why} new streams in {rate:.0f} a second; retry later or elsewhere",
                retry_after=jittered(SATURATED_RETRY_AFTER, self._rand),
            )

    def _refused(self, reason: str) -> None:
        self._metrics.admission_refused.labels(reason=reason).inc()

    def register(self, session: StreamSession) -> None:
        key = session.key
        now = time.monotonic()
        previous = self._by_key.get(key)
        ended_at = self._recently_ended.pop(key, None)
        if previous is not None:
            self._replace(previous)
        elif ended_at is not None and now - ended_at <= RESTART_WINDOW_SECONDS:
            self._metrics.stream_restarts.inc()
        self._by_key[key] = session
        if session not in self._all:
            self._all.add(session)
            self._by_id[session.session_id] = session
            self._per_school[session.school_id] = self._per_school.get(session.school_id, 0) + 1
        self._metrics.sessions_active.set(len(self._all))
        self._prune(now)

    def budget_notice(self, notice: dict[str, Any]) -> None:
        """A school's budget notice (from any replica): to its sessions here."""
        school_id = notice.get("school_id")
        try:
            percent, threshold = float(notice["percent_used"]), int(notice["threshold"])
            remaining = float(notice["remaining_usd"])
        except (KeyError, TypeError, ValueError):
            return
        for session in self.sessions_of_school(str(school_id)):
            session.budget_alert(percent_used=percent, threshold=threshold, remaining_usd=remaining)

    def replaced_elsewhere(self, session_id: str, handover: bool = False) -> None:
        """A newer connection for the group of ``session_id`` started on another replica
        (``handover``: it resumes this very session there)."""
        session = self._by_id.get(session_id)
        if session is None:
            return
        if handover:
            session.hand_over()
        else:
            self._replace(session)

    def _replace(self, session: StreamSession) -> None:
        session.request_end(
            from_error(Replaced("a newer connection for this group replaced this one"))
        )
        self._metrics.stream_restarts.inc()

    def unregister(self, session: StreamSession) -> None:
        if session in self._all:
            self._all.discard(session)
            self._by_id.pop(session.session_id, None)
            left = self._per_school.get(session.school_id, 0) - 1
            if left > 0:
                self._per_school[session.school_id] = left
            else:
                self._per_school.pop(session.school_id, None)
        if self._by_key.get(session.key) is session:
            del self._by_key[session.key]
            self._recently_ended[session.key] = time.monotonic()
        self._metrics.sessions_active.set(len(self._all))

    def _prune(self, now: float) -> None:
        if len(self._recently_ended) > 4 * self.max_sessions:
            cutoff = now - RESTART_WINDOW_SECONDS
            self._recently_ended = {k: t for k, t in self._recently_ended.items() if t >= cutoff}

    async def drain(self, grace: float) -> None:
        """Stop admitting; end every session cleanly; wait up to ``grace`` (+ a margin)."""
        self.draining = True
        sessions = list(self._all)
        for session in sessions:
            session.request_end(SHUTDOWN)
        if sessions:
            await asyncio.wait(
                [asyncio.create_task(s.finished.wait()) for s in sessions], timeout=grace + 10
            )
