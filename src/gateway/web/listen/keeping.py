"""A session's state in Redis (:mod:`gateway.fleet.kept`), written in order as its windows
settle. A ``Transcript`` reaches the client only once Redis has it (what a client holds,
another replica can replay); the messages after it wait their turn. One write is in
flight at a time: what settles meanwhile joins the next one, so a session costs at most
two writes' worth of messages however fast its windows close (past
:data:`MAX_WAITING` messages they go out without waiting). A Redis that is away costs
the session only its resumability elsewhere (logged once; delivery goes on).

The windows' charges go in the same write as the state that moves past them (one script:
see :data:`gateway.fleet.kept.SETTLE`), so a window is charged exactly when the session's
state says it was settled: a replica that dies first leaves the window to the replica that
resumes it, one that dies after leaves nothing to charge again. A write that fails hands
its charges to the budget (committed there, or journaled and replayed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.budget.service import BudgetService
from gateway.budget.settlement import Charge
from gateway.errors import LedgerUnavailable
from gateway.fleet.kept import KeptSessions
from gateway.observability import tracing
from gateway.observability.logging import get_logger
from gateway.stream.ending import Counts
from gateway.stream.outgoing import Queued
from gateway.stream.start import SessionStart

log = get_logger("gateway.session")
#: How long a session's last writes may take when it ends.
CLOSE_SECONDS = 2.0
#: Messages that may wait for a write; past this they are delivered at once.
MAX_WAITING = 256

Put = Callable[[Queued], None]


class KeptWriter:
    def __init__(self, kept: KeptSessions, start: SessionStart, budget: BudgetService) -> None:
        self._kept = kept
        self._budget = budget
        self._session_id = start.session_id
        self._rate = start.config.sample_rate
        self._failing = False
        #: The client is away: writes keep the state's ``RESUME_SECONDS`` from the drop.
        self._away = False
        #: Messages waiting for the write in flight (or the next), and what it will write.
        self._waiting: list[tuple[Put, Queued]] = []
        self._said: list[dict[str, Any]] = []
        self._charges: list[Charge] = []
        self._state: tuple[int, dict[str, Any]] = (0, {})
        self._writer: asyncio.Task[None] | None = None
        self._ops: asyncio.Task[None] | None = None
        claims = start.claims
        school, group = claims.school_id, claims.group_id
        assert school is not None and group is not None
        token, config = start.resume_token, start.config
        self._op(kept.opened(start.session_id, school, group, token, config))

    def deliver(
        self, messages: list[Queued], counts: Counts, put: Put, charges: list[Charge]
    ) -> None:
        """Hand ``messages`` to ``put`` in order, each ``Transcript`` (and all after it)
        once Redis has it, with ``charges`` (its windows'): the session then stands at the
        end of the last one."""
        said = [m for m, _ in messages if m["type"] == "Transcript"]
        busy = self._writer is not None and not self._writer.done()
        if not said and not busy:
            for message in messages:
                put(message)
            return
        self._waiting += [(put, message) for message in messages]
        self._charges += charges
        if said:
            self._said += said
            samples = round(float(said[-1]["end"]) * self._rate)
            self._state = (samples, {**counts.as_dict(), "cost_usd": counts.cost_usd})
        if len(self._waiting) > MAX_WAITING:  # Redis is slow: do not hold the client up
            waiting, self._waiting = self._waiting, []
            for sent, message in waiting:
                sent(message)
        if not busy:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """Write what settled, then deliver what waited for it; again while more came."""
        while self._said or self._waiting:
            said, self._said = self._said, []
            charges, self._charges = self._charges, []
            waiting, self._waiting = self._waiting, []
            if said:
                await self._settle(said, charges)
            for sent, message in waiting:
                sent(message)

    async def _settle(self, said: list[dict[str, Any]], charges: list[Charge]) -> None:
        samples, totals = self._state
        try:
            with tracing.span("budget.commit", {"stt.windows": len(charges)}):
                taken = await self._kept.settled(
                    self._session_id,
                    said,
                    samples,
                    totals,
                    charges=tuple(charges),
                    detached=self._away,
                )
        except LedgerUnavailable as exc:
            self._failed(exc)
            for charge in charges:  # it may have landed: charging again is idempotent
                await self._budget.settle(charge)
            return
        except asyncio.CancelledError:  # the gateway stops: the next start replays them
            for charge in charges:
                self._budget.defer(charge)
            raise
        self._failing = False
        for charge, result in taken:
            if result.status < 0:  # its hold is gone (days old): charged on its day keys
                await self._budget.settle(charge)
            else:
                self._budget.charged(charge.hold, charge.actual_micro, result)

    async def drained(self, bound: float) -> None:
        """Wait (at most ``bound`` s) for the writes and deliveries queued so far."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), bound)

    def handing_over(self) -> None:
        self._op(self._kept.handing_over(self._session_id))

    def detached(self) -> None:
        self._away = True
        self._op(self._kept.refresh([self._session_id], detached=True))

    def attached(self) -> None:
        self._away = False
        self._op(self._kept.refresh([self._session_id]))

    async def close(self, *, handed_over: bool) -> None:
        """The session ended here: its state goes (or, handed over, stays for the replica
        that resumes it, marked as no one's)."""
        await self.drained(CLOSE_SECONDS)
        if handed_over:
            self._op(self._kept.released(self._session_id))
        else:
            self._op(self._kept.forget(self._session_id))
        ops = self._ops
        if ops is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ops), CLOSE_SECONDS)

    def _op(self, work: Awaitable[None]) -> None:
        """Run ``work`` after the operations before it (rare: start, drop, resume, end)."""
        self._ops = asyncio.create_task(self._after(self._ops, work))

    async def _after(self, previous: asyncio.Task[None] | None, work: Awaitable[None]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await work
        except LedgerUnavailable as exc:
            self._failed(exc)

    def _failed(self, exc: LedgerUnavailable) -> None:
        if not self._failing:
            self._failing = True
            log.warning("session.keep_failed", error=exc.error)
