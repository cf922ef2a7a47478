"""Live words for the window still open (pure): when to ask, and what an answer becomes.

While a window is open and speech goes on, every ``interval`` seconds the
audio of the open window so far is handed out to be decoded by the interim
transcriber, one request at a time per session. An answer becomes an
``Interim`` only if its window is still open (a window that closed gets its
``Transcript``, which replaces every interim: a late answer is dropped). An
interim the decoder had no room for is skipped, not queued, and the interval
doubles (up to ``max_interval``) until one is decoded again: interims are the
first thing a busy process gives up. When a window's final decode ends, the
next frame asks at once: on a shared model that decode was what kept it busy.
Nothing here touches windows, their order, their billing or the session's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.stream import protocol
from gateway.stream.agreement import Agreement
from gateway.stream.windowing import Windower

#: An open window is worth an interim once it holds this much audio.
MIN_INTERIM_SECONDS = 0.3
#: The interval stretches up to this many times its setting while interims are skipped.
MAX_STRETCH = 8
#: No interim starts this close to the window's target length (nor within this fraction of
#: it): the window closes at its next pause, and a decode still running then would hold
#: its final up on a shared model — for words the final brings a moment later.
CLOSING_SECONDS = 0.8
CLOSING_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class InterimRequest:
    """The open window's audio so far, to decode with ``prompt``."""

    seq: int
    start_sample: int
    end_sample: int
    sample_rate: int
    pcm: bytes
    prompt: str

    @property
    def seconds(self) -> float:
        return (self.end_sample - self.start_sample) / self.sample_rate


class InterimSchedule:
    def __init__(self, interval: float, now: float) -> None:
        self.base_interval = self.interval = interval
        self.next_due = now + interval
        self.asked: InterimRequest | None = None
        #: Audio up to here was looked at for speech (stream samples).
        self.checked_to = 0
        self._agreement: tuple[int, Agreement] | None = None

    def due(self, now: float) -> bool:
        return self.asked is None and now >= self.next_due

    def consider(self, windower: Windower, prompt: str, now: float) -> InterimRequest | None:
        """Once due: the open window's audio so far, if it holds enough, is not about to
        close, and speech went on since the last request; else None, and a look again in an
        interval."""
        start, end = windower.open_start_sample, windower.received_samples
        rate, target = windower.sample_rate, windower.window_seconds
        closing = target - min(CLOSING_SECONDS, CLOSING_FRACTION * target)
        worth_asking = MIN_INTERIM_SECONDS * rate <= end - start < closing * rate
        if not worth_asking or not windower.voiced_since(max(self.checked_to, start)):
            self.later(now)
            return None
        audio = windower.open_audio()
        return self.ask(InterimRequest(windower.open_seq, start, end, rate, audio, prompt), now)

    def later(self, now: float) -> None:
        """Nothing to ask now (no new speech, too little audio, a window about to close):
        look again in an interval."""
        self.next_due = now + self.interval

    def ask(self, request: InterimRequest, now: float) -> InterimRequest:
        self.asked = request
        self.checked_to = request.end_sample
        self.next_due = now + self.interval
        return request

    def final_done(self, now: float) -> None:
        """A window's decode ended: a decoder that was busy with it has room now, so the
        next frame asks (not a stretched interval later: the next sentence has begun)."""
        self.next_due = min(self.next_due, now)

    def window_closed(self, seq: int) -> None:
        """Window ``seq`` closed: a request for it is stale (its answer will be dropped)."""
        if self.asked is not None and self.asked.seq <= seq:
            self.asked = None
        if self._agreement is not None and self._agreement[0] <= seq:
            self._agreement = None

    def answered(self, request: InterimRequest, text: str, now: float) -> dict[str, Any] | None:
        """The ``Interim`` message for a decoded request, or None when it is stale."""
        if request is not self.asked:
            return None
        self.asked = None
        self.interval = self.base_interval
        self.next_due = max(self.next_due, now)
        if self._agreement is None or self._agreement[0] != request.seq:
            self._agreement = (request.seq, Agreement())
        full, stable = self._agreement[1].update(text)
        return protocol.interim(
            seq=request.seq,
            start=request.start_sample / request.sample_rate,
            end=request.end_sample / request.sample_rate,
            text=full,
            stable_text=stable,
        )

    def resolved(
        self, request: InterimRequest, text: str | None, now: float, *, busy: bool
    ) -> dict[str, Any] | None:
        """A decode ended: its ``Interim`` (None when stale, skipped for a busy decoder, or
        failed)."""
        if busy:
            self.skipped(request, now)
        elif text is None:
            self.failed(request, now)
        else:
            return self.answered(request, text, now)
        return None

    def skipped(self, request: InterimRequest, now: float) -> None:
        """The decoder was busy: give this one up and ask less often for a while."""
        if request is self.asked:
            self.asked = None
            self.interval = min(self.interval * 2, self.base_interval * MAX_STRETCH)
            self.next_due = now + self.interval

    def failed(self, request: InterimRequest, now: float) -> None:
        if request is self.asked:
            self.asked = None
            self.next_due = now + self.interval
