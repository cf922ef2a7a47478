"""The windows of one session from closed to delivered (pure): what each is sent with, what
may start, which ``Transcript`` is next in order, and what is counted.

:class:`~gateway.stream.core.SessionCore` decides when windows close and how the
session ends; this keeps the order: every window added is delivered once, in
``seq`` order, or counted as dropped when the client is gone.
"""

from __future__ import annotations

from typing import Any

from gateway.keyterms import window_prompt
from gateway.stream.actions import Submission
from gateway.stream.audio_window import Window
from gateway.stream.continuity import PreviousText
from gateway.stream.ending import Counts
from gateway.stream.limits import SessionLimits
from gateway.stream.observer import Observer
from gateway.stream.ordering import Slot, WindowQueue
from gateway.stream.outcome import DropReason, Outcome


class WindowFlow:
    def __init__(
        self,
        limits: SessionLimits,
        observer: Observer,
        vocabulary: str,
        counts: Counts | None = None,
    ) -> None:
        """``counts``: the session's windows so far (a session taken over), else none."""
        self.queue = WindowQueue(
            max_in_flight=limits.max_in_flight, max_pending_seconds=limits.max_pending_seconds
        )
        self.counts = counts or Counts()
        self._observer = observer
        self._vocabulary = vocabulary
        self._continuity = limits.prompt_continuity
        self._previous = PreviousText()

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, window: Window, model: str, now: float, dropped: DropReason | None) -> None:
        """A closed window: silence and drops are resolved at once, speech waits its turn."""
        outcome: Outcome | None = None
        if dropped is not None:
            outcome = Outcome.dropped(dropped, model)
        elif not window.speech:
            outcome = Outcome.silence(model)
        self._observer.window_closed(window, to_send=dropped is None)
        self._observer.pending_changed(window.duration)
        self.queue.add(window, model, now, outcome)

    def resolved(self, seq: int, outcome: Outcome | None) -> None:
        self.queue.resolve(seq, outcome)
        if outcome is not None and outcome.status == "ok":
            self._previous.heard(seq, outcome.text)

    def startable(self) -> list[Submission]:
        """The windows that may be transcribed now, each with its prompt."""
        return [self._submission(slot) for slot in self.queue.start_ready()]

    def deliverable(self, now: float) -> list[dict[str, Any]]:
        """The ``Transcript`` messages ready to go, in order (counted as delivered)."""
        messages = []
        for slot in self.queue.deliverable():
            assert slot.outcome is not None
            latency = now - slot.closed_at
            messages.append(slot.transcript(latency))
            self._count(slot.outcome, latency)
            self._observer.pending_changed(-slot.window.duration)
        return messages

    def abandon(self) -> None:
        """The client is gone: every undelivered window counts as dropped."""
        for slot in self.queue.abandon():
            lost = slot.outcome or Outcome.dropped(DropReason.DISCONNECTED, slot.model)
            self._count(lost, None)
            self._observer.pending_changed(-slot.window.duration)

    def prompt_for(self, seq: int) -> str:
        """Window ``seq``'s prompt: the class vocabulary, then the text heard before it."""
        previous = self._previous.for_window(seq) if self._continuity else ""
        return window_prompt(self._vocabulary, previous) or ""

    def _submission(self, slot: Slot) -> Submission:
        seq = slot.window.seq
        return Submission(seq, slot.window, slot.model, self.prompt_for(seq))

    def _count(self, outcome: Outcome, latency: float | None) -> None:
        self.counts.add(outcome)
        self._observer.window_delivered(outcome, latency)
