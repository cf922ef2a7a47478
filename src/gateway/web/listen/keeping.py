"""A session's state in Redis (:mod:`gateway.fleet.kept`), written in order as its windows
settle. A ``Transcript`` reaches the client only once Redis has it (what a client holds,
another replica can replay); the messages after it wait their turn. A Redis that is away
costs the session only its resumability elsewhere (logged once, delivery goes on)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gateway.errors import LedgerUnavailable
from gateway.fleet.kept import KeptSessions
from gateway.observability.logging import get_logger
from gateway.stream.ending import Counts
from gateway.stream.outgoing import Queued
from gateway.stream.start import SessionStart

log = get_logger("gateway.session")
#: How long a session's last writes may take when it ends.
CLOSE_SECONDS = 2.0


class KeptWriter:
    def __init__(self, kept: KeptSessions, start: SessionStart) -> None:
        self._kept = kept
        self._session_id = start.session_id
        self._rate = start.config.sample_rate
        self._last: asyncio.Task[None] | None = None
        self._failing = False
        claims = start.claims
        assert claims.school_id is not None and claims.group_id is not None
        self._chain(
            kept.opened(
                start.session_id,
                claims.school_id,
                claims.group_id,
                start.resume_token,
                start.config,
            )
        )

    def deliver(
        self, messages: list[Queued], counts: Counts, put: Callable[[Queued], None]
    ) -> None:
        """Hand ``messages`` to ``put`` in order, each ``Transcript`` (and all after it)
        once Redis has it: the session then stands at the end of the last one."""
        said = [m for m, _ in messages if m["type"] == "Transcript"]
        if said:
            samples = round(float(said[-1]["end"]) * self._rate)
            totals = {**counts.as_dict(), "cost_usd": counts.cost_usd}
            write = self._kept.settled(self._session_id, said, samples, totals)
            self._chain(self._written_then(write, messages, put))
        elif self._last is None or self._last.done():
            for message in messages:
                put(message)
        elif messages:
            self._chain(_put_all(messages, put))

    async def drained(self, bound: float) -> None:
        """Wait (at most ``bound`` s) for the writes and deliveries queued so far."""
        last = self._last
        if last is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(last), bound)

    def handing_over(self) -> None:
        self._chain(self._kept.handing_over(self._session_id))

    def detached(self) -> None:
        self._chain(self._kept.refresh([self._session_id], detached=True))

    def attached(self) -> None:
        self._chain(self._kept.refresh([self._session_id]))

    async def close(self, *, handed_over: bool) -> None:
        """The session ended here: its state goes (or, handed over, stays for the replica
        that resumes it, marked as no one's)."""
        if handed_over:
            self._chain(self._kept.released(self._session_id))
        else:
            self._chain(self._kept.forget(self._session_id))
        last = self._last
        if last is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(last), CLOSE_SECONDS)

    async def _written_then(
        self, write: Awaitable[None], messages: list[Queued], put: Callable[[Queued], None]
    ) -> None:
        """After the write (or its failure: delivery goes on), the messages."""
        try:
            await write
        except LedgerUnavailable as exc:
            self._failed(exc)
        else:
            self._failing = False
        await _put_all(messages, put)

    def _failed(self, exc: LedgerUnavailable) -> None:
        if not self._failing:
            self._failing = True
            log.warning("session.keep_failed", error=exc.error)

    def _chain(self, work: Awaitable[None]) -> None:
        """Run ``work`` after everything chained before it."""
        self._last = asyncio.create_task(self._after(self._last, work))

    async def _after(self, previous: asyncio.Task[None] | None, work: Awaitable[None]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await work
        except LedgerUnavailable as exc:
            self._failed(exc)


async def _put_all(messages: list[Queued], put: Callable[[Queued], None]) -> None:
    for message in messages:
        put(message)
