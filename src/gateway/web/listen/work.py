"""A session's work in flight: a task per window (its transcription) and per interim (its
decode), each reporting back to the session's core when it ends; cancelled when the core
says so, and all of it when the session ends. A transcribed window's charge waits here for
its Transcript: taken with it when it is delivered (or kept for its client), given back if
the Transcript says the window was dropped or never goes out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.budget.settlement import Charge
from gateway.observability import tracing
from gateway.observability.logging import get_logger
from gateway.stream.actions import Actions, Submission
from gateway.stream.core import SessionCore
from gateway.stream.interims import InterimRequest
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.outgoing import Queued
from gateway.stt.service import UpstreamEvents
from gateway.window.interim import FAILED, InterimDecoder
from gateway.window.pipeline import WindowProcessor

log = get_logger("gateway.session")


class SessionWork:
    def __init__(
        self,
        core: SessionCore,
        processor: WindowProcessor,
        interims: InterimDecoder | None,
        events: UpstreamEvents,
        flush: Callable[[], None],
    ) -> None:
        """``events``: whom a window's transcription tells while it waits; ``flush``: carry
        out what the core decided once a task reported back."""
        self._core = core
        self._processor = processor
        self._interims = interims
        self._events = events
        self._flush = flush
        #: The token windows are billed under (a resume may bring a new one).
        self.claims = core.start.claims
        self._windows: dict[int, asyncio.Task[None]] = {}
        self._decodes: set[asyncio.Task[None]] = set()
        #: Charges of transcribed windows by seq, until their Transcript goes out.
        self._charges: dict[int, Charge] = {}
        #: The last seq whose Transcript went out (they go in order).
        self._delivered = -1
        self._settling: set[asyncio.Task[None]] = set()

    def start(self, actions: Actions) -> None:
        """Start what ``actions`` hands out; cancel what it takes back."""
        for job in actions.submissions:
            self._windows[job.seq] = asyncio.create_task(self._transcribe(job))
        for request in actions.interims:
            decoding = asyncio.create_task(self._interim(request))
            self._decodes.add(decoding)
            decoding.add_done_callback(self._decodes.discard)
        for seq in actions.cancellations:
            if (task := self._windows.get(seq)) is not None:
                task.cancel()

    async def stop(self) -> None:
        """Cancel the windows in flight and wait for them to let go of their budget holds."""
        work = list(self._windows.values())
        for task in work:
            task.cancel()
        if work:
            await asyncio.gather(*work, return_exceptions=True)

    def take_charges(self, messages: list[Queued]) -> list[Charge]:
        """The charges of the windows whose Transcripts are in ``messages`` and say they were
        transcribed; those of windows dropped after all (the backlog, a shutdown) are given
        back."""
        taken = []
        for message, _ in messages:
            if message["type"] != "Transcript":
                continue
            self._delivered = seq = int(message["seq"])
            if (charge := self._charges.pop(seq, None)) is None:
                continue
            if message["status"] == "ok":
                taken.append(charge)
            else:
                self._give_back(charge)
        return taken

    def charge(self, charges: list[Charge]) -> None:
        """Take ``charges`` now (a session no other replica could resume)."""
        for charge in charges:
            self._spawn(self._settle(charge))

    async def settled(self) -> None:
        """The session ended: give back charges no Transcript took; wait for the charges
        and releases under way (journaled if the gateway stops first)."""
        for charge in self._charges.values():
            self._give_back(charge)
        self._charges.clear()
        if self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    def _give_back(self, charge: Charge) -> None:
        """Release the hold of a window no Transcript charges."""
        self._spawn(self._processor.budget.release(charge.hold))

    async def _settle(self, charge: Charge) -> None:
        with tracing.span("budget.commit", {"stt.windows": 1}):
            await self._processor.budget.settle(charge)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def cancel_all(self) -> None:
        for task in (*self._windows.values(), *self._decodes):
            task.cancel()

    def steer(self) -> None:
        """Push in what the services decide now: the school's model (a downgrade once its
        spend passed a step) and the window target (longer while the upstream rate-limits).
        Both move when a window settles, or when a budget alert arrives."""
        core, processor = self._core, self._processor
        core.steer(
            model=processor.budget.model_for(core.school_id, core.config.model),
            window_seconds=processor.window_seconds,
        )

    async def _transcribe(self, job: Submission) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self._processor.process(
                job.window,
                job.model,
                claims=self.claims,
                language=self._core.config.language,
                prompt=job.prompt,
                events=self._events,
                charge_later=lambda charge: self._charges.__setitem__(job.seq, charge),
            )
        except asyncio.CancelledError:
            pass  # the core dropped the window (backlog, the client left): no answer
        except Exception:
            log.exception("session.window_failed")
            outcome = Outcome.dropped(DropReason.STT_UNAVAILABLE, job.model)
        finally:
            self._windows.pop(job.seq, None)
        self.steer()
        self._core.window_resolved(job.seq, outcome, time.monotonic())
        self._flush()
        if job.seq <= self._delivered and (late := self._charges.pop(job.seq, None)):
            # Its Transcript went out before it answered (dropped from the backlog).
            self._give_back(late)

    async def _interim(self, request: InterimRequest) -> None:
        """Decode the open window's audio so far; the core decides what the answer becomes."""
        assert self._interims is not None
        language = self._core.config.language
        try:
            decoded = await self._interims.decode(request, self.claims, language)
        except Exception:
            log.exception("session.interim_failed")
            decoded = FAILED
        self._core.interim_resolved(request, decoded.text, time.monotonic(), busy=decoded.busy)
        self._flush()
