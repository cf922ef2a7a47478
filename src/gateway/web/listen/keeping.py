"""A session's state in Redis (:mod:`gateway.fleet.kept`), written in order as its windows
settle, in the background: the stream never waits for Redis, and a Redis that is away
costs the session only its resumability elsewhere (logged once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from gateway.errors import LedgerUnavailable
from gateway.fleet.kept import KeptSessions
from gateway.observability.logging import get_logger
from gateway.stream.ending import Counts
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

    def settled(self, transcripts: list[dict[str, Any]], counts: Counts) -> None:
        """Transcripts were delivered: the session stands at the end of the last one."""
        samples = round(float(transcripts[-1]["end"]) * self._rate)
        totals = {**counts.as_dict(), "cost_usd": counts.cost_usd}
        self._chain(self._kept.settled(self._session_id, transcripts, samples, totals))

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

    def _chain(self, work: Awaitable[None]) -> None:
        self._last = asyncio.create_task(self._after(self._last, work))

    async def _after(self, previous: asyncio.Task[None] | None, work: Awaitable[None]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await work
        except LedgerUnavailable as exc:
            if not self._failing:
                self._failing = True
                log.warning("session.keep_failed", error=exc.error)
            return
        self._failing = False
