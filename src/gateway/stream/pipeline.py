"""Per-session ordered, bounded delivery of window outcomes.

Windows are submitted in ``seq`` order. At most ``max_in_flight`` are being
processed at once; the rest wait in order. Outcomes are delivered strictly in
``seq`` order, whatever order the upstream answers in. Unanswered audio is
bounded by ``max_pending_seconds``: past it the oldest unanswered windows are
resolved as ``dropped`` / ``BACKLOG`` (their processing is cancelled), never
silently discarded. Every submitted window is resolved exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.stream.windowing import Window


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # ok | silence | dropped
    model: str
    text: str = ""
    reason: str | None = None
    billed_seconds: float = 0.0
    cost_usd: float = 0.0

    @classmethod
    def dropped(cls, reason: str, model: str) -> Outcome:
        return cls(status="dropped", model=model, reason=reason)


@dataclass(eq=False, slots=True)
class PendingWindow:
    window: Window
    model: str
    closed_at: float = field(default_factory=time.monotonic)
    outcome: Outcome | None = None
    task: asyncio.Task[None] | None = None
    #: Counted in the unanswered-audio bound until resolved.
    counted: bool = False
    resolved: asyncio.Event = field(default_factory=asyncio.Event)

    def resolve(self, outcome: Outcome) -> bool:
        """Set the outcome once; later calls are ignored. True when this call set it."""
        if self.outcome is not None:
            return False
        self.outcome = outcome
        self.resolved.set()
        return True


Processor = Callable[[PendingWindow], Awaitable[Outcome]]
Deliverer = Callable[[PendingWindow, Outcome], Awaitable[None]]


class WindowPipeline:
    def __init__(
        self,
        process: Processor,
        deliver: Deliverer,
        *,
        max_in_flight: int,
        max_pending_seconds: float,
        on_pending_change: Callable[[float], None] | None = None,
    ) -> None:
        self._process = process
        self._deliver = deliver
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending_seconds
        self._on_pending_change = on_pending_change
        self._undelivered: deque[PendingWindow] = deque()
        self._waiting: deque[PendingWindow] = deque()
        self._in_flight = 0
        self._unanswered_seconds = 0.0
        self._submitted = asyncio.Event()
        self._progress = asyncio.Event()
        self._closed = False

    @property
    def unanswered_seconds(self) -> float:
        return self._unanswered_seconds

    @property
    def idle(self) -> bool:
        return not self._undelivered

    def submit(self, window: Window, model: str, outcome: Outcome | None = None) -> PendingWindow:
        """Queue ``window``; ``outcome`` resolves it at once (silence, budget refusal…)."""
        pending = PendingWindow(window, model)
        self._undelivered.append(pending)
        self._pending(+window.duration)
        if outcome is not None:
            self._resolve(pending, outcome)
        else:
            pending.counted = True
            self._unanswered_seconds += window.duration
            self._waiting.append(pending)
            self._enforce_backlog()
            self._start_ready()
        self._submitted.set()
        return pending

    def drop_unanswered(self, reason: str) -> None:
        """Resolve every unanswered window as dropped with ``reason`` (cancelling its work)."""
        for pending in list(self._undelivered):
            self._drop(pending, reason)

    def _enforce_backlog(self) -> None:
        for pending in list(self._undelivered):
            if self._unanswered_seconds <= self._max_pending + 1e-9:
                break
            self._drop(pending, "BACKLOG")

    def _drop(self, pending: PendingWindow, reason: str) -> None:
        if pending.outcome is not None:
            return
        self._resolve(pending, Outcome.dropped(reason, pending.model))
        if pending.task is not None and not pending.task.done():
            pending.task.cancel()

    def _resolve(self, pending: PendingWindow, outcome: Outcome) -> None:
        if pending.resolve(outcome) and pending.counted:
            self._unanswered_seconds -= pending.window.duration

    def _pending(self, delta: float) -> None:
        if self._on_pending_change is not None:
            self._on_pending_change(delta)

    def _start_ready(self) -> None:
        while self._in_flight < self._max_in_flight and self._waiting:
            pending = self._waiting.popleft()
            if pending.outcome is not None:
                continue
            self._in_flight += 1
            pending.task = asyncio.create_task(self._run(pending))

    async def _run(self, pending: PendingWindow) -> None:
        try:
            outcome = await self._process(pending)
        except asyncio.CancelledError:
            # Cancelled by a backlog drop (already resolved) or at teardown.
            self._resolve(pending, Outcome.dropped("SHUTDOWN", pending.model))
            raise
        finally:
            self._in_flight -= 1
            if not self._closed:
                self._start_ready()
        self._resolve(pending, outcome)

    async def deliver_forever(self) -> None:
        """Deliver outcomes in ``seq`` order until cancelled."""
        while True:
            while not self._undelivered:
                self._submitted.clear()
                await self._submitted.wait()
            head = self._undelivered[0]
            await head.resolved.wait()
            assert head.outcome is not None
            await self._deliver(head, head.outcome)
            self._undelivered.popleft()
            self._pending(-head.window.duration)
            del head  # do not pin the window's audio while waiting for the next one
            self._progress.set()

    async def wait_delivered(self, timeout: float | None) -> bool:
        """Wait until every submitted window was delivered; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._undelivered:
            self._progress.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return not self._undelivered
        return True

    async def abort(self) -> list[PendingWindow]:
        """Stop all work; return the windows that were never delivered."""
        self._closed = True
        lost = list(self._undelivered)
        tasks = [p.task for p in lost if p.task is not None and not p.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._undelivered.clear()
        self._waiting.clear()
        for pending in lost:
            self._pending(-pending.window.duration)
        return lost
