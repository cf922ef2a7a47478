"""A session's windows from closing to delivery, in ``seq`` order (pure).

Windows enter in ``seq`` order. At most ``max_in_flight`` are handed out for
processing at once; the rest wait in order. Outcomes leave strictly in ``seq``
order, whatever order they arrive in. Unanswered audio is bounded by
``max_pending_seconds``: past it the oldest unanswered windows are resolved as
``dropped`` / ``BACKLOG`` (their work is to be cancelled), never silently
discarded. Every window is resolved exactly once: the first outcome wins.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.stream import protocol
from gateway.stream.audio_window import Window
from gateway.stream.outcome import DropReason, Outcome


@dataclass(eq=False, slots=True)
class Slot:
    """One window between closing and delivery."""

    window: Window
    model: str
    closed_at: float
    outcome: Outcome | None = None
    #: Counted in the unanswered-audio bound until resolved.
    counted: bool = False
    #: Handed out for processing and not yet reported back.
    working: bool = False

    def transcript(self, latency: float) -> dict[str, Any]:
        """The window's ``Transcript`` message, ``latency`` seconds after it closed."""
        window, outcome = self.window, self.outcome
        assert outcome is not None
        return protocol.transcript(
            seq=window.seq,
            start=window.start,
            end=window.end,
            status=outcome.status,
            text=outcome.text,
            model=outcome.model,
            latency_ms=round(latency * 1000),
            from_finalize=window.from_finalize,
            billed_seconds=outcome.billed_seconds,
            reason=outcome.reason,
        )


class WindowQueue:
    def __init__(self, *, max_in_flight: int, max_pending_seconds: float) -> None:
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending_seconds
        self._undelivered: deque[Slot] = deque()
        self._by_seq: dict[int, Slot] = {}
        self._waiting: deque[Slot] = deque()
        #: Handed out for processing and not yet reported back (delivered or not).
        self._working: dict[int, Slot] = {}
        self.unanswered_seconds = 0.0
        #: Seqs whose work should stop (dropped while being processed); taken by the caller.
        self.cancelled: list[int] = []

    def __len__(self) -> int:
        return len(self._undelivered)

    def take_cancelled(self) -> list[int]:
        """The seqs whose work should stop, handed out once."""
        taken, self.cancelled = self.cancelled, []
        return taken

    @property
    def in_flight(self) -> int:
        return len(self._working)

    def add(self, window: Window, model: str, now: float, outcome: Outcome | None = None) -> None:
        """Queue ``window``; ``outcome`` resolves it at once (silence, dropped…)."""
        slot = Slot(window, model, now)
        self._undelivered.append(slot)
        self._by_seq[window.seq] = slot
        if outcome is not None:
            self._resolve(slot, outcome)
            return
        slot.counted = True
        self.unanswered_seconds += window.duration
        self._waiting.append(slot)
        for old in list(self._undelivered):
            if self.unanswered_seconds <= self._max_pending + 1e-9:
                break
            self._drop(old, DropReason.BACKLOG)

    def start_ready(self) -> list[Slot]:
        """The waiting windows that may be processed now, in order."""
        started = []
        while len(self._working) < self._max_in_flight and self._waiting:
            slot = self._waiting.popleft()
            if slot.outcome is not None:
                continue
            slot.working = True
            self._working[slot.window.seq] = slot
            started.append(slot)
        return started

    def resolve(self, seq: int, outcome: Outcome | None) -> None:
        """The work on ``seq`` ended, with ``outcome`` (None: it was cancelled)."""
        slot = self._working.pop(seq, None)
        if slot is None:
            return
        slot.working = False
        if outcome is not None:
            self._resolve(slot, outcome)

    def drop_unanswered(self, reason: DropReason) -> None:
        """Resolve every unanswered window as dropped with ``reason``."""
        for slot in list(self._undelivered):
            self._drop(slot, reason)

    def deliverable(self) -> list[Slot]:
        """Remove and return the resolved windows at the head, in ``seq`` order."""
        out = []
        while self._undelivered and self._undelivered[0].outcome is not None:
            slot = self._undelivered.popleft()
            del self._by_seq[slot.window.seq]
            out.append(slot)
        return out

    def abandon(self) -> list[Slot]:
        """Empty the queue (the client is gone); the undelivered windows, work cancelled."""
        lost = list(self._undelivered)
        self.cancelled.extend(s.window.seq for s in lost if s.working)
        self._undelivered.clear()
        self._by_seq.clear()
        self._waiting.clear()
        return lost

    def _drop(self, slot: Slot, reason: DropReason) -> None:
        if slot.outcome is not None:
            return
        self._resolve(slot, Outcome.dropped(reason, slot.model))
        if slot.working:
            self.cancelled.append(slot.window.seq)

    def _resolve(self, slot: Slot, outcome: Outcome) -> None:
        if slot.outcome is not None:
            return
        slot.outcome = outcome
        if slot.counted:
            self.unanswered_seconds -= slot.window.duration
