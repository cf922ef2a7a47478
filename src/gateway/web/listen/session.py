"""The driver of one stream: reads its connection, feeds the :class:`SessionCore`, runs what
it hands out, writes what it says. Every decision is the core's (:mod:`gateway.stream.core`);
this moves bytes and time: client frames in, messages out through the connection's bounded
outbox, a task per window and per interim (cancelled when the core says so), one timer for
the core's next deadline, and the close. A dropped connection leaves the session detached
(the core waits for its client); :meth:`StreamSession.resume` gives it a new one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.auth.tokens import Claims
from gateway.fleet.kept import KeptSessions
from gateway.fleet.presence import iso as iso_seconds
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream.core import SessionCore
from gateway.stream.ending import DISCONNECTED, SHUTDOWN, SLOW_CONSUMER, Ending
from gateway.stream.outgoing import Queued
from gateway.stream.session_metrics import SessionMetrics
from gateway.stream.start import SessionStart
from gateway.web.listen.connection import Connection
from gateway.web.listen.keeping import KeptWriter
from gateway.web.listen.wakeup import Wakeup
from gateway.web.listen.work import SessionWork
from gateway.window.interim import InterimDecoder
from gateway.window.pipeline import WindowProcessor

log = get_logger("gateway.session")

#: How long the last messages and the close handshake may take before the connection is dropped.
CLOSE_SECONDS = 5.0
#: The same, while the gateway shuts down: it must exit within its grace (plus a second).
SHUTDOWN_CLOSE_SECONDS = 0.5


class StreamSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        start: SessionStart,
        *,
        processor: WindowProcessor,
        metrics: Metrics,
        abort: Callable[[], None] = lambda: None,
        interims: InterimDecoder | None = None,
        kept: KeptSessions | None = None,
    ) -> None:
        """``abort`` drops the connection at once (a client that stopped reading);
        ``interims``: the decoder of live words (when ``start`` asks for them); ``kept``:
        where its state is kept for a resume on another replica."""
        self._metrics = metrics
        self.resume_token = start.resume_token
        self.core = SessionCore(start, time.monotonic(), SessionMetrics(metrics))
        self._tasks = SessionWork(self.core, processor, interims, self, self._flush)
        self._kept = KeptWriter(kept, start, processor.budget) if kept is not None else None
        self._handed_over = False
        self.session_id = start.session_id
        self.school_id = self.core.school_id
        self.group_id = self.core.group_id
        self.config = start.config
        self.started_at = time.time()
        #: The client's connection now (None while detached).
        self.connection: Connection | None = Connection(ws, abort, self._stuck)
        self._letting_go: set[asyncio.Task[None]] = set()
        self._wakeup = Wakeup(self._tick)
        self._done = asyncio.Event()
        self.finished = asyncio.Event()

    # -- what others see ---------------------------------------------------

    @property
    def detached(self) -> bool:
        """Its client is away (the connection dropped; no resume yet)."""
        return self.connection is None

    @property
    def key(self) -> tuple[str, str]:
        return (self.school_id, self.group_id)

    @property
    def audio_seconds(self) -> float:
        return self.core.audio_seconds

    @property
    def counts(self) -> dict[str, int]:
        return self.core.counts.as_dict()

    @property
    def cost_usd(self) -> float:
        return self.core.counts.cost_usd

    def presence(self) -> dict[str, Any]:
        """What the school's staff may see of this stream, fleet-wide (never text)."""
        counts = self.counts
        return {
            "session_id": self.session_id,
            "group_id": self.group_id,
            "started_at": iso_seconds(self.started_at),
            "audio_seconds": round(self.audio_seconds, 1),
            "windows": {k: counts[k] for k in ("ok", "silence", "dropped")},
            "model": self.config.model,
        }

    # -- told from outside -------------------------------------------------

    def request_end(self, ending: Ending) -> None:
        """Ask the session to end (shutdown, replaced…); the first ending wins."""
        self.core.request_end(ending, time.monotonic())
        self._flush()

    def hand_over(self) -> None:
        """The session is resumed on another replica: finish here and leave it to that."""
        self._handed_over = True
        if self._kept is not None:
            self._kept.handing_over()
        self.core.hand_over(time.monotonic())
        self._flush()

    def budget_alert(self, **alert: Any) -> None:
        """The school crossed a threshold (``percent_used``, ``threshold``, ``remaining_usd``)."""
        self._tasks.steer()
        self.core.budget_alert(**alert)
        self._flush()

    # UpstreamEvents, from a window's transcription
    def rate_limited(self) -> None:
        self.core.upstream_notice("rate_limited", time.monotonic())
        self._flush()

    def held(self) -> None:
        self.core.upstream_notice("held", time.monotonic())
        self._flush()

    def credentials_rejected(self) -> None:
        self.core.upstream_notice("credentials_rejected", time.monotonic())
        self._flush()

    # -- running -----------------------------------------------------------

    async def run(self) -> Ending:
        try:
            return await self._run()
        finally:
            self.finished.set()

    async def _run(self) -> Ending:
        assert self.connection is not None
        self._start_reading(self.connection)
        try:
            self._flush()
            await self._done.wait()
            await self._stop_work()
            ending = self.core.ending
            assert ending is not None
            self._flush()  # the last message
            if self._kept is not None:
                await self._kept.drained(CLOSE_SECONDS)
            if self.connection is not None:
                bound = SHUTDOWN_CLOSE_SECONDS if ending is SHUTDOWN else CLOSE_SECONDS
                await self.connection.close(ending, bound)
            return ending
        finally:
            self._tasks.cancel_all()
            self._wakeup.cancel()
            await self._tasks.settled()
            away = self.connection is None
            if self.connection is not None:
                await self.connection.let_go()
            else:
                self._metrics.sessions_detached.dec()
            if self._letting_go:
                await asyncio.gather(*self._letting_go, return_exceptions=True)
            if self._kept is not None:
                # A session whose client is away when the gateway stops stays resumable
                # on another replica; one handed over is that replica's now.
                stopped = self.core.ending is SHUTDOWN
                await self._kept.close(handed_over=self._handed_over or (away and stopped))

    async def resume(
        self, ws: web.WebSocketResponse, abort: Callable[[], None], claims: Claims, last_seq: int
    ) -> Connection:
        """A client continues this session on ``ws`` (a connection still attached is told it
        was replaced): ``Begin``, the Transcripts after ``last_seq``, then the stream goes on.
        The returned connection's ``over`` is set when the session is done with it."""
        old, new = self.connection, Connection(ws, abort, self._stuck)
        self.connection = new
        if old is None:
            self._metrics.sessions_detached.dec()
        else:
            if old.reader is not None:
                old.reader.cancel()  # nothing more from it reaches the core
            letting_go = asyncio.create_task(old.replaced(CLOSE_SECONDS))
            self._letting_go.add(letting_go)
            letting_go.add_done_callback(self._letting_go.discard)
        self._tasks.claims = claims  # its windows are billed under the new token
        if self._kept is not None:
            self._kept.attached()
        self.core.resumed(claims, last_seq, time.monotonic(), claims.exp - time.time())
        self._start_reading(new)
        self._flush()
        return new

    def _start_reading(self, connection: Connection) -> None:
        connection.reader = asyncio.create_task(connection.read(self.core, self._flush, self._lost))

    async def _lost(self, connection: Connection, clean: bool) -> None:
        """The connection ended without ``CloseStream``: a clean close (1000) ends the
        session; a drop detaches it for its client to resume (when it may)."""
        now = time.monotonic()
        if clean:
            self.core.request_end(DISCONNECTED, now)
        else:
            self.core.connection_lost(now)
        if self.core.detached:
            self.connection = None
            self._metrics.sessions_detached.inc()
            log.info("session.detached", resume_seconds=self.core.start.resume_seconds)
            if self._kept is not None:
                self._kept.detached()
            await connection.let_go()
        self._flush()

    def _flush(self) -> None:
        """Carry out what the core asks for."""
        core = self.core
        actions = core.take_actions()
        charges = self._tasks.take_charges(actions.messages)
        # To this connection, also what waits for the kept write (the replay after a resume
        # repeats it on the next one, after its Begin).
        put = self._put_to()
        if self._kept is not None:
            self._kept.deliver(actions.messages, core.counts, put, charges)
        else:
            for message in actions.messages:
                put(message)
            self._tasks.charge(charges)
        self._tasks.start(actions)
        if actions.ending is not None:
            self._done.set()
        else:
            self._wakeup.arm(core.next_deadline)

    def _put_to(self) -> Callable[[Queued], None]:
        """A sender to the connection the client has now (nothing while detached: the core
        keeps Transcripts for a replay)."""
        connection = self.connection

        def put(queued: Queued) -> None:
            if connection is not None:
                connection.outbox.put(queued[0], key=queued[1])

        return put

    def _tick(self) -> None:
        self.core.tick(time.monotonic())
        self._flush()

    async def _stop_work(self) -> None:
        """Stop reading; wait for cancelled windows to let go of their budget holds."""
        if self.connection is not None:
            await self.connection.stop_reading()
        await self._tasks.stop()

    def _stuck(self, why: str) -> None:
        """The client stopped reading: drop its connection (a session that may be resumed
        waits for it), or end the session without waiting for it."""
        log.warning("session.slow_consumer", problem=why)
        connection = self.connection
        if self.core.start.resume_seconds and self.core.ending is None and connection:
            connection.abort()  # its reader sees the drop and detaches the session
        else:
            self.request_end(SLOW_CONSUMER)
