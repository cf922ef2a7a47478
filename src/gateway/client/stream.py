"""One classroom stream to the gateway that outlives its connections.

:class:`ListenStream` sends audio with :meth:`~ListenStream.send` and hands out
the gateway's messages as an async iterator. It keeps the last
``keep_seconds`` of audio (:class:`~gateway.client.ring.AudioRing`); when the
connection drops it connects again (backoff with jitter, ``retry_after``
honoured) with ``resume`` and ``last_seq``, sends the audio again from the
``audio_seconds`` the new ``Begin`` names, and drops the ``Transcript``\\ s it
already handed out. A resume that fails (the session ended meanwhile) starts
a new session from the end of the last ``Transcript``: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway.client.reconnect import delay, may_reconnect
from gateway.client.ring import AudioRing

Token = str | Callable[[], Awaitable[str]]
#: Audio sent again after a resume goes in frames this long (100 ms at 16 kHz).
RESEND_FRAME_BYTES = 3200


class StreamRefused(Exception):
    """The stream could not go on: the gateway said no (its ``Error`` code and close
    code), or it could not be reached in ``max_attempts`` tries."""

    def __init__(self, message: str, *, code: str | None = None, close_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.close_code = close_code


class ListenStream:
    def __init__(
        self,
        url: str,
        token: Token,
        *,
        sample_rate: int = 16000,
        interim_results: bool = False,
        query: dict[str, str] | None = None,
        keep_seconds: float = 120.0,
        max_attempts: int = 8,
        retry_refused: bool = True,
        give_up_after: float | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        """``url``: the listen endpoint; ``token``: a stream token, or an async function
        that returns a fresh one for each connection; ``keep_seconds``: audio kept to send
        again (at least the gateway's ``RESUME_SECONDS`` + ``MAX_PENDING_AUDIO_SECONDS``);
        ``max_attempts``: connections tried in a row without a ``Begin``;
        ``retry_refused``: whether a first connection the gateway refuses (``Error`` before
        any ``Begin``, e.g. ``OVERLOADED``) is tried again after its ``retry_after`` — if
        not, the refusal ends the stream; ``give_up_after``: seconds the gateway may be
        unreachable (after it was reached) before the stream gives up."""
        self._url = url
        self._token = token
        self._rate = sample_rate
        params = {"sample_rate": str(sample_rate), **(query or {})}
        if interim_results:
            params["interim_results"] = "true"
        self._params = params
        self._ring = AudioRing(int(keep_seconds * sample_rate) * 2)
        self._max_attempts = max_attempts
        self._retry_refused = retry_refused
        self._give_up_after = give_up_after
        self._open_timeout = open_timeout
        self._began_once = False
        self._messages: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._finishing = False
        self._done = False
        #: The session now: its token, where its audio starts in the stream, its last seq.
        self.session_id: str | None = None
        self._resume_token: str | None = None
        self._base = 0
        self._last_seq = -1
        #: Where the last Transcript ended (stream bytes): a new session starts there.
        self._covered = 0
        self.resumes = 0
        self.close_code: int | None = None

    async def __aenter__(self) -> ListenStream:
        self._runner = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        ws = self._ws
        if ws is not None:
            await ws.close()

    def __aiter__(self) -> ListenStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        message = await self._messages.get()
        if message is None:
            raise StopAsyncIteration
        if isinstance(message, BaseException):
            raise message
        return message

    async def send(self, pcm: bytes) -> None:
        """Send audio now, or keep it to send once connected again."""
        self._ring.append(pcm)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(pcm)

    async def finish(self) -> None:
        """``CloseStream``: the gateway transcribes what it has and ends with
        ``Termination`` (sent again after a resume, if the connection drops first)."""
        self._finishing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "CloseStream"}))

    # -- inside ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt, retry_after = 0, None
        reached_at = time.monotonic()
        try:
            while True:
                if attempt:
                    await asyncio.sleep(self._wait(attempt, retry_after, reached_at))
                try:
                    ws = await connect(**await self._connect_args())
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    self._unreachable(exc, attempt, reached_at)
                    attempt, retry_after = attempt + 1, None
                    continue
                reached_at = time.monotonic()
                began, refused, retry_after = await self._serve(ws)
                attempt = 1 if began else attempt + 1
                if refused and not self._began_once and not self._retry_refused:
                    break  # refused at once: said so (its Error), not tried again
                if self._done:
                    break
                if not may_reconnect(self.close_code) or attempt > self._max_attempts:
                    break
                self.resumes += 1
        except StreamRefused as exc:
            self._messages.put_nowait(exc)
        finally:
            self._messages.put_nowait(None)

    def _wait(self, attempt: int, retry_after: float | None, reached_at: float) -> float:
        """The backoff before ``attempt``, never past the moment the stream gives up."""
        wait = delay(attempt - 1, retry_after)
        if self._give_up_after is not None and retry_after is None:
            left = self._give_up_after - (time.monotonic() - reached_at)
            wait = max(0.0, min(wait, left))
        return wait

    def _unreachable(self, exc: Exception, attempt: int, reached_at: float) -> None:
        """A connection attempt failed: raise if the stream gives up now."""
        away = time.monotonic() - reached_at
        if self._give_up_after is not None and self._began_once:
            if away >= self._give_up_after:
                why = type(exc).__name__
                raise StreamRefused(f"gateway unreachable for {away:.0f} s ({why}): gave up")
        elif attempt >= self._max_attempts:
            raise StreamRefused(f"cannot connect: {exc}") from exc

    async def _connect_args(self) -> dict[str, Any]:
        token = self._token if isinstance(self._token, str) else await self._token()
        params = dict(self._params)
        if self._resume_token is not None:
            params.update(resume=self._resume_token, last_seq=str(self._last_seq))
        return {
            "uri": f"{self._url}?{urlencode(params)}",
            "additional_headers": {"Authorization": f"Bearer {token}"},
            "max_size": None,
            # Audio does not compress: per-message deflate would only cost both ends CPU.
            "compression": None,
            "open_timeout": self._open_timeout,
        }

    async def _serve(self, ws: ClientConnection) -> tuple[bool, bool, float | None]:
        """One connection, until it ends: whether it got a ``Begin``, whether the gateway
        refused it (an ``Error`` before any ``Begin``; a connection dropped before its
        ``Begin`` was not refused), and the ``retry_after`` its ``Error`` asked for."""
        began, refused, retry_after = False, False, None
        try:
            async for raw in ws:
                if not isinstance(raw, str):
                    continue
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "Begin":
                    began = True
                    await self._begun(ws, message)
                elif kind == "Transcript" and not self._fresh(message):
                    continue  # a replay of one already handed out
                elif kind == "Termination":
                    self._ended(message)
                elif kind == "Error":
                    refused = refused or not began
                    retry_after = message.get("retry_after")
                self._messages.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
        closed = ws.close_code if ws.close_code != 1006 else None
        self.close_code = closed
        if closed == 1000 or (closed is not None and not may_reconnect(closed)):
            self._done = True
        return began, refused, retry_after

    async def _begun(self, ws: ClientConnection, begin: dict[str, Any]) -> None:
        """A connection's ``Begin``: continue (or start) the session, send the audio the
        gateway does not have yet, then go live."""
        self._began_once = True
        if not begin.get("resumed"):
            self._base = self._covered if self.session_id is not None else 0
            self._last_seq = -1
        self.session_id = begin["session_id"]
        self._resume_token = begin.get("resume_token") or None
        position = self._base + round(float(begin.get("audio_seconds", 0.0)) * self._rate) * 2
        while position < self._ring.end:  # audio sent meanwhile joins the end of this
            position = max(position, self._ring.first)  # older audio fell out of the ring
            chunk = self._ring.since(position, RESEND_FRAME_BYTES)
            await ws.send(chunk)
            position += len(chunk)
        self._ws = ws
        if self._finishing:
            await ws.send(json.dumps({"type": "CloseStream"}))

    def _ended(self, termination: dict[str, Any]) -> None:
        """The session ended. Unless this client asked for it, it was the gateway shutting
        down: a new session takes over from there on another replica."""
        seconds = float(termination.get("audio_seconds", 0.0))
        self._covered = self._base + round(seconds * self._rate) * 2
        self._resume_token = None
        self._done = self._finishing or termination.get("reason") != "server_shutdown"

    def _fresh(self, transcript: dict[str, Any]) -> bool:
        """Whether a Transcript is new to this client (a replay repeats ones it has)."""
        if transcript["seq"] <= self._last_seq:
            return False
        self._last_seq = transcript["seq"]
        self._covered = self._base + round(float(transcript["end"]) * self._rate) * 2
        return True
