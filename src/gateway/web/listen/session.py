"""The driver of one stream: reads the socket, feeds the :class:`SessionCore`, runs what it
hands out, writes what it says. Every decision is the core's (:mod:`gateway.stream.core`);
this moves bytes and time: client frames in, messages out through the bounded
:class:`Outbox`, a task per window and per interim (cancelled when the core says so), one
timer for the core's next deadline, and the close."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from gateway import keyterms
from gateway.auth.tokens import Claims
from gateway.errors import FrameTooLarge, InternalError
from gateway.fleet.presence import iso as iso_seconds
from gateway.keyterms import vocabulary_prompt
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream.actions import Submission
from gateway.stream.core import SessionCore
from gateway.stream.ending import SHUTDOWN, SLOW_CONSUMER, Ending
from gateway.stream.interims import InterimRequest
from gateway.stream.limits import SessionLimits
from gateway.stream.outbox import Outbox
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.protocol import StreamConfig
from gateway.stream.session_metrics import SessionMetrics
from gateway.web.errors import close_frame
from gateway.web.listen.wakeup import Wakeup
from gateway.window.interim import FAILED, InterimDecoder
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
        *,
        session_id: str,
        claims: Claims,
        config: StreamConfig,
        processor: WindowProcessor,
        limits: SessionLimits,
        metrics: Metrics,
        provider: str,
        abort: Callable[[], None] = lambda: None,
        interims: InterimDecoder | None = None,
        interim_interval: float = 0.5,
    ) -> None:
        """``abort`` drops the connection at once (a client that stopped reading);
        ``interims``: live words for a client that asked for them."""
        self.ws = ws
        self.claims = claims
        self._processor = processor
        self.core = SessionCore(
            session_id=session_id,
            claims=claims,
            config=config,
            limits=limits,
            provider=provider,
            vocabulary=vocabulary_prompt(keyterms.merge(claims.keyterms, config.keyterms)),
            now=time.monotonic(),
            expires_in=claims.exp - time.time(),
            window_seconds=processor.service.window_seconds,
            model=processor.budget.model_for(claims.school_id or "", config.model),
            observer=SessionMetrics(metrics),
            interim_interval=interim_interval if interims and config.interim_results else None,
        )
        self._interims = interims
        self._interim_work: set[asyncio.Task[None]] = set()
        self.session_id = session_id
        self.school_id = self.core.school_id
        self.group_id = self.core.group_id
        self.config = config
        self.started_at = time.time()
        self._abort = abort
        self.outbox = Outbox(ws.send_str, self._stuck)
        self._work: dict[int, asyncio.Task[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._wakeup = Wakeup(self._tick)
        self._done = asyncio.Event()
        self.finished = asyncio.Event()

    # -- what others see ---------------------------------------------------

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

    def budget_alert(self, **alert: Any) -> None:
        """The school crossed a threshold (``percent_used``, ``threshold``, ``remaining_usd``)."""
        self._steer()
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
        writer = asyncio.create_task(self.outbox.run())
        self._reader = asyncio.create_task(self._read())
        try:
            self._flush()
            await self._done.wait()
            await self._stop_work()
            ending = self.core.ending
            assert ending is not None
            await self._close(ending)
            return ending
        finally:
            for task in (*self._work.values(), *self._interim_work):
                task.cancel()
            if self._reader is not None:
                self._reader.cancel()
            self._wakeup.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _read(self) -> None:
        """Read the socket until the session is over, also while it finishes (after
        ``CloseStream``, a drain, an error): reading is what answers the client's pings and
        notices its close. The core ignores frames once an ending is chosen."""
        core, ws = self.core, self.ws
        try:
            while not core.done:
                msg = await ws.receive()
                now = time.monotonic()
                if msg.type is WSMsgType.BINARY:
                    core.receive_audio(msg.data, now)
                elif msg.type is WSMsgType.TEXT:
                    core.receive_text(msg.data, now)
                elif msg.type is WSMsgType.ERROR and getattr(msg.data, "code", None) == 1009:
                    core.fail(FrameTooLarge("frame larger than MAX_FRAME_BYTES"), now)
                else:
                    core.connection_lost(now)
                if core.has_output:
                    self._flush()
        except Exception:
            log.exception("session.reader_failed")
            core.fail(InternalError("internal error; please reconnect"), time.monotonic())
            self._flush()

    async def _transcribe(self, job: Submission) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self._processor.process(
                job.window,
                job.model,
                claims=self.claims,
                language=self.config.language,
                prompt=job.prompt,
                events=self,
            )
        except asyncio.CancelledError:
            pass  # the core dropped the window (backlog, the client left): no answer
        except Exception:
            log.exception("session.window_failed")
            outcome = Outcome.dropped(DropReason.STT_UNAVAILABLE, job.model)
        finally:
            self._work.pop(job.seq, None)
        self._steer()
        self.core.window_resolved(job.seq, outcome, time.monotonic())
        self._flush()

    async def _interim(self, request: InterimRequest) -> None:
        """Decode the open window's audio so far; the core decides what the answer becomes."""
        assert self._interims is not None
        try:
            decoded = await self._interims.decode(request, self.claims, self.config.language)
        except Exception:
            log.exception("session.interim_failed")
            decoded = FAILED
        self.core.interim_resolved(request, decoded.text, time.monotonic(), busy=decoded.busy)
        self._flush()

    def _steer(self) -> None:
        """Push in what the services decide now: the school's model (a downgrade once its
        spend passed a step) and the window target (longer while the upstream rate-limits).
        Both move when a window settles, or when a budget alert arrives."""
        processor = self._processor
        self.core.steer(
            model=processor.budget.model_for(self.school_id, self.config.model),
            window_seconds=processor.service.window_seconds,
        )

    def _flush(self) -> None:
        """Carry out what the core asks for."""
        core = self.core
        actions = core.take_actions()
        for message, key in actions.messages:
            self.outbox.put(message, key=key)
        for job in actions.submissions:
            self._work[job.seq] = asyncio.create_task(self._transcribe(job))
        for request in actions.interims:
            decoding = asyncio.create_task(self._interim(request))
            self._interim_work.add(decoding)
            decoding.add_done_callback(self._interim_work.discard)
        for seq in actions.cancellations:
            if (task := self._work.get(seq)) is not None:
                task.cancel()
        if actions.ending is not None:
            self._done.set()
        else:
            self._wakeup.arm(core.next_deadline)

    def _tick(self) -> None:
        self.core.tick(time.monotonic())
        self._flush()

    async def _stop_work(self) -> None:
        """Stop reading; wait for cancelled windows to let go of their budget holds."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        work = list(self._work.values())
        for task in work:
            task.cancel()
        if work:
            await asyncio.gather(*work, return_exceptions=True)

    async def _close(self, ending: Ending) -> None:
        self._flush()  # the last message
        bound = SHUTDOWN_CLOSE_SECONDS if ending is SHUTDOWN else CLOSE_SECONDS
        if self.outbox.stuck is None and await self.outbox.flush(bound):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(bound):
                    code, reason = (
                        close_frame(ending.error) if ending.error else (ending.close_code, b"")
                    )
                    await self.ws.close(code=1000 if ending.gone else code, message=reason)
                    return
        self._abort()  # the client does not read: no close handshake to wait for

    def _stuck(self, why: str) -> None:
        log.warning("session.slow_consumer", problem=why)
        self.request_end(SLOW_CONSUMER)
