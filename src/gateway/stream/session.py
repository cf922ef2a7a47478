"""One streaming session: a thin driver loop around the pure windowing core.

receive → feed the :class:`Windower` → submit closed windows to the
:class:`WindowPipeline` → deliver outcomes in order. Everything that ends a
session goes through :meth:`StreamSession.request_end`; :meth:`run` then
flushes the remaining audio, waits (bounded) for pending windows, sends the
last message and closes with the right code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from gateway import keyterms
from gateway.auth.tokens import Claims
from gateway.errors import (
    BacklogOverflow,
    BadAudio,
    BudgetExhausted,
    FrameTooLarge,
    IdleTimeout,
    InternalError,
    SessionExpired,
    StreamError,
)
from gateway.keyterms import vocabulary_prompt, window_prompt
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream import protocol
from gateway.stream.continuity import is_suspect, prompt_tail
from gateway.stream.ending import (
    CLIENT_CLOSE,
    DISCONNECTED,
    SLOW_CONSUMER,
    Ending,
    from_error,
)
from gateway.stream.outbox import Outbox
from gateway.stream.pipeline import Outcome, PendingWindow, WindowPipeline
from gateway.stream.presence import iso as iso_seconds
from gateway.stream.processor import WindowProcessor
from gateway.stream.protocol import StreamConfig
from gateway.stream.vad import VadParams
from gateway.stream.windowing import Window, Windower

log = get_logger("gateway.session")

RATE_LIMIT_WARNING_INTERVAL = 5.0
#: How long the last messages and the close handshake may take before the connection is dropped.
CLOSE_SECONDS = 5.0
#: Audio may arrive ahead of real time by this many times the backlog bound before 4029.
AHEAD_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_frame_bytes: int
    idle_timeout: float
    max_pending_seconds: float
    max_in_flight: int
    finish_timeout: float
    vad: VadParams
    #: No window is longer (the adaptive window's ceiling, ``STT_WINDOW_MAX_SECONDS``).
    window_max_seconds: float = 15.0
    #: Give each window the previous window's text as its prompt (``STT_PROMPT_CONTINUITY``).
    prompt_continuity: bool = False
    #: Shorten long pauses in the audio sent upstream (``STT_SHORTEN_PAUSES``).
    shorten_pauses: bool = True


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
    ) -> None:
        """``abort`` drops the connection at once (a client that stopped reading)."""
        assert claims.school_id is not None and claims.group_id is not None
        self.ws = ws
        self.session_id = session_id
        self.claims = claims
        self.school_id = claims.school_id
        self.group_id = claims.group_id
        self.config = config
        self._processor = processor
        self._service = processor.service
        self._limits = limits
        self._metrics = metrics
        self._provider = provider
        self._windower = Windower(
            config.sample_rate,
            self._service.window_seconds,
            limits.vad,
            max_seconds=limits.window_max_seconds,
            shorten_pauses=limits.shorten_pauses,
        )
        self._vocabulary = vocabulary_prompt(keyterms.merge(claims.keyterms, config.keyterms))
        self._pipeline = WindowPipeline(
            self._process,
            self._deliver,
            max_in_flight=limits.max_in_flight,
            max_pending_seconds=limits.max_pending_seconds,
            on_pending_change=metrics.pending_audio.inc,
        )
        self._ending: Ending | None = None
        self._end_requested = asyncio.Event()
        self.finished = asyncio.Event()
        self._started = time.monotonic()
        self.started_at = time.time()
        self._last_activity = self._started
        self._abort = abort
        self.outbox = Outbox(ws.send_str, self._stuck)
        self._prompt = ""
        self._prompt_seq = -1
        self._last_rate_warning = -float("inf")
        self._held_warned = False
        self._credentials_warned = False
        self._unreported_bytes = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self.counts = {"windows": 0, "ok": 0, "silence": 0, "dropped": 0}
        self.cost_usd = 0.0

    def presence(self) -> dict[str, Any]:
        """What the school's staff may see of this stream, fleet-wide (never text)."""
        return {
            "session_id": self.session_id,
            "group_id": self.group_id,
            "started_at": iso_seconds(self.started_at),
            "audio_seconds": round(self.audio_seconds, 1),
            "windows": {k: self.counts[k] for k in ("ok", "silence", "dropped")},
            "model": self.config.model,
        }

    @property
    def key(self) -> tuple[str, str]:
        return (self.school_id, self.group_id)

    @property
    def audio_seconds(self) -> float:
        return self._windower.received_samples / self.config.sample_rate

    def request_end(self, ending: Ending) -> None:
        """Ask the session to end; the first request wins."""
        if self._ending is None:
            self._ending = ending
            self._end_requested.set()

    # -- the driver ---------------------------------------------------------

    async def run(self) -> Ending:
        try:
            return await self._run()
        finally:
            self.finished.set()

    async def _run(self) -> Ending:
        writer = asyncio.create_task(self.outbox.run())
        try:
            return await self._drive()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _drive(self) -> Ending:
        self._send(
            protocol.begin(
                session_id=self.session_id,
                school_id=self.school_id,
                group_id=self.group_id,
                expires_at=self.claims.expires_at,
                config=self.config,
                window_seconds=self._windower.window_seconds,
                provider=self._provider,
            )
        )
        delivery = asyncio.create_task(self._pipeline.deliver_forever())
        reader = asyncio.create_task(self._read_loop())
        ended = asyncio.create_task(self._end_requested.wait())
        await asyncio.wait({delivery, ended}, return_when=asyncio.FIRST_COMPLETED)
        if delivery.done():
            self.request_end(DISCONNECTED)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._report_audio()
        ended.cancel()
        ending = self._ending or DISCONNECTED
        if not ending.gone:
            await self._finish_pending(ending, delivery)
        if delivery.done() and not ending.gone and not self._pipeline.idle:
            ending = DISCONNECTED
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await delivery
        for lost in await self._pipeline.abort():
            self._count(lost.outcome or Outcome.dropped("DISCONNECTED", lost.model))
        await self._close(ending)
        return ending

    async def _finish_pending(self, ending: Ending, delivery: asyncio.Task[None]) -> None:
        for window in self._windower.close():
            self._submit(window, dropped="BACKLOG" if ending.drops_backlog else None)
        if ending.drops_backlog:
            self._pipeline.drop_unanswered("BACKLOG")
        delivered = await self._delivered_within(self._limits.finish_timeout, delivery)
        if not delivered and not delivery.done():
            self._pipeline.drop_unanswered(ending.timeout_reason)
            await self._delivered_within(5.0, delivery)

    async def _delivered_within(self, timeout: float, delivery: asyncio.Task[None]) -> bool:
        """Wait for every window to be delivered, the timeout, or the delivery loop to end."""
        waiter = asyncio.create_task(self._pipeline.wait_delivered(timeout))
        await asyncio.wait({waiter, delivery}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            return False
        return waiter.result()

    async def _close(self, ending: Ending) -> None:
        if not ending.gone and not self.ws.closed:
            final: dict[str, Any]
            if ending.error is not None:
                final = protocol.error(ending.error)
            else:
                final = protocol.termination(
                    reason=ending.termination or ending.metric_reason,
                    audio_seconds=self.audio_seconds,
                    windows=self.counts["windows"],
                    transcribed=self.counts["ok"],
                    silence=self.counts["silence"],
                    dropped=self.counts["dropped"],
                    cost_usd=self.cost_usd,
                )
            self._send(final)
        if self.outbox.stuck is None and await self.outbox.flush(CLOSE_SECONDS):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self.ws.close(
                        code=ending.close_code if not ending.gone else 1000,
                        message=(ending.error.code if ending.error else "").encode(),
                    )
                    return
        self._abort()  # the client does not read: no close handshake to wait for

    # -- receiving ----------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            await self._read()
        except StreamError as exc:
            self.request_end(from_error(exc))
        except Exception:
            log.exception("session.reader_failed")
            self.request_end(from_error(InternalError("internal error; please reconnect")))

    async def _read(self) -> None:
        # One timer per session checks idleness and expiry; receive() itself has no timeout,
        # which would cost a timeout object per audio frame.
        self._check_deadlines()
        while True:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.BINARY:
                self._on_audio(msg.data)
            elif msg.type is WSMsgType.TEXT:
                self._on_text(msg.data)
            elif (
                msg.type is WSMsgType.ERROR
                and isinstance(msg.data, Exception)
                and getattr(msg.data, "code", None) == 1009
            ):
                raise FrameTooLarge("frame larger than MAX_FRAME_BYTES")
            else:
                self.request_end(DISCONNECTED)
                return
            if self._ending is not None:
                return

    def _check_deadlines(self) -> None:
        """End the session when the token expired or it was idle too long; else re-arm."""
        self._watchdog = None
        if self._ending is not None:
            return
        now = time.monotonic()
        until_expiry = self.claims.exp - time.time()
        until_idle = self._last_activity + self._limits.idle_timeout - now
        if until_expiry <= 0:
            self.request_end(
                from_error(SessionExpired("the token expired; reconnect with a new token"))
            )
        elif until_idle <= 0:
            self.request_end(
                from_error(
                    IdleTimeout(f"no audio or KeepAlive for {self._limits.idle_timeout:g} seconds")
                )
            )
        else:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(
                min(until_idle, until_expiry) + 0.01, self._check_deadlines
            )

    def _on_audio(self, data: bytes) -> None:
        size = len(data)
        if size == 0:
            return
        if size > self._limits.max_frame_bytes:
            raise FrameTooLarge(
                f"frame of {size} bytes exceeds MAX_FRAME_BYTES ({self._limits.max_frame_bytes})"
            )
        if size % (2 * self.config.channels):
            raise BadAudio("audio frames must hold whole 16-bit samples")
        self._last_activity = time.monotonic()
        self._unreported_bytes += size
        self._windower.window_seconds = self._service.window_seconds
        windows = self._windower.feed(data)
        if windows:
            self._report_audio()
            for window in windows:
                self._submit(window)
        ahead = self.audio_seconds - (self._last_activity - self._started)
        if ahead > AHEAD_FACTOR * self._limits.max_pending_seconds:
            raise BacklogOverflow(
                f"audio is arriving much faster than real time ({ahead:.0f} s ahead)"
            )

    def _report_audio(self) -> None:
        """Add received audio to the counter in batches (a locked increment per frame is waste)."""
        if self._unreported_bytes:
            self._metrics.audio_received.inc(self._unreported_bytes / 2 / self.config.sample_rate)
            self._unreported_bytes = 0

    def _on_text(self, text: str) -> None:
        kind = protocol.parse_control(text)
        if kind == "KeepAlive":
            self._last_activity = time.monotonic()
        elif kind == "Finalize":
            for window in self._windower.finalize():
                self._submit(window)
        elif kind == "CloseStream":
            self.request_end(CLIENT_CLOSE)
        else:
            self._notify(
                protocol.warning(
                    "BAD_MESSAGE",
                    "expected a JSON object with type KeepAlive, Finalize or CloseStream",
                )
            )

    def _submit(self, window: Window, *, dropped: str | None = None) -> None:
        model = self._processor.budget.model_for(self.school_id, self.config.model)
        outcome: Outcome | None = None
        if dropped is not None:
            outcome = Outcome.dropped(dropped, model)
        elif not window.speech:
            outcome = Outcome(status="silence", model=model)
        self._count_window(window, to_send=dropped is None)
        self._pipeline.submit(window, model, outcome)

    def _count_window(self, window: Window, *, to_send: bool) -> None:
        metrics = self._metrics
        metrics.window_length.observe(window.duration)
        metrics.audio_speech.inc(window.voiced_seconds)
        if not to_send:
            return
        if not window.speech:
            metrics.audio_not_sent.labels(reason="silence").inc(window.duration)
        elif window.sent_seconds < window.duration:
            metrics.audio_not_sent.labels(reason="pause").inc(window.duration - window.sent_seconds)

    # -- processing and delivery -------------------------------------------

    async def _process(self, pending: PendingWindow) -> Outcome:
        previous = ""
        if self._limits.prompt_continuity and self._prompt_seq < pending.window.seq:
            previous = self._prompt
        prompt = window_prompt(self._vocabulary, previous)
        school = await self._processor.budget.school(self.school_id, self.claims.district_id)
        outcome = await self._processor.process(
            pending, school=school, language=self.config.language, prompt=prompt, events=self
        )
        if outcome.reason == "BUDGET_EXCEEDED":
            self.request_end(
                from_error(BudgetExhausted("the school's daily transcription budget is used up"))
            )
        if outcome.status == "ok":
            self._held_warned = self._credentials_warned = False
            if pending.window.seq > self._prompt_seq and not is_suspect(outcome.text):
                self._prompt, self._prompt_seq = prompt_tail(outcome.text), pending.window.seq
        return outcome

    async def _deliver(self, pending: PendingWindow, outcome: Outcome) -> None:
        window = pending.window
        latency = time.monotonic() - pending.closed_at
        self._send(
            protocol.transcript(
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
        )
        self._metrics.transcript_latency.observe(latency)
        self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        self.counts["windows"] += 1
        self.counts[outcome.status] += 1
        self.cost_usd += outcome.cost_usd
        self._metrics.windows.labels(status=outcome.status).inc()
        if outcome.status == "dropped":
            self._metrics.windows_dropped.labels(reason=outcome.reason or "UNKNOWN").inc()

    # -- UpstreamEvents -----------------------------------------------------

    def rate_limited(self) -> None:
        now = time.monotonic()
        if now - self._last_rate_warning >= RATE_LIMIT_WARNING_INTERVAL:
            self._last_rate_warning = now
            self._notify(
                protocol.warning(
                    "RATE_LIMITED", "the transcription service is rate limiting; retrying"
                )
            )

    def budget_alert(self, *, percent_used: float, threshold: int, remaining_usd: float) -> None:
        """The school crossed an alert threshold: tell this classroom."""
        self._notify(
            protocol.budget(
                percent_used=percent_used, threshold=threshold, remaining_usd=remaining_usd
            )
        )

    def credentials_rejected(self) -> None:
        if not self._credentials_warned:
            self._credentials_warned = True
            self._notify(
                protocol.warning(
                    "UPSTREAM_REJECTED",
                    "the transcription service refused the gateway's credentials; "
                    "an operator must fix its API key",
                )
            )

    def held(self) -> None:
        if not self._held_warned:
            self._held_warned = True
            self._notify(
                protocol.warning(
                    "STT_UNAVAILABLE",
                    "the transcription service is unavailable; audio is being held",
                )
            )

    # -- sending ------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self.outbox.put(message)

    def _notify(self, message: dict[str, Any]) -> None:
        """Queue a notice; a Warning whose code is already waiting (or was just sent) is
        coalesced, so no sequence of client frames can grow the outbox."""
        key = f"Warning:{message['code']}" if message["type"] == "Warning" else None
        self.outbox.put(message, key=key)

    def _stuck(self, why: str) -> None:
        log.warning("session.slow_consumer", problem=why)
        self.request_end(SLOW_CONSUMER)
