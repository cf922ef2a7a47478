"""One WebSocket of a session: its outbox and writer, and how it is closed or let go.

A session outlives its connections: a dropped one leaves the session
detached, a resume brings a new one, and a second connection resuming the
same session replaces the first (``Error`` ``REPLACED``, close 4009).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from gateway.errors import FrameTooLarge, InternalError, Replaced
from gateway.observability.logging import get_logger
from gateway.stream import protocol
from gateway.stream.core import SessionCore
from gateway.stream.ending import Ending
from gateway.stream.outbox import Outbox
from gateway.web.errors import close_frame

log = get_logger("gateway.session")


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        abort: Callable[[], None],
        on_stuck: Callable[[str], None],
    ) -> None:
        """``abort`` drops the connection at once (a client that stopped reading)."""
        self.ws = ws
        self.abort = abort
        self.outbox = Outbox(ws.send_str, on_stuck)
        self._writer = asyncio.create_task(self.outbox.run())
        self.reader: asyncio.Task[None] | None = None
        #: Set once the session is done with this connection (lost, replaced or closed).
        self.over = asyncio.Event()

    async def read(
        self,
        core: SessionCore,
        flush: Callable[[], None],
        lost: Callable[[Connection, bool], Awaitable[None]],
    ) -> None:
        """Feed client frames to ``core`` until the session is over, also while it finishes
        (after ``CloseStream``, a drain, an error): reading is what answers the client's pings
        and notices its close; the core ignores frames once an ending is chosen. ``flush``
        carries out what a frame made the core decide; ``lost(self, clean)``: the connection
        ended (``clean``: with a close 1000)."""
        ws = self.ws
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
                    await lost(self, ws.close_code == 1000)
                    return
                if core.has_output:
                    flush()
        except Exception:
            log.exception("session.reader_failed")
            core.fail(InternalError("internal error; please reconnect"), time.monotonic())
            flush()

    async def close(self, ending: Ending, bound: float) -> None:
        """Send what is queued (the last message among it) and close as ``ending`` says,
        within ``bound`` seconds; a client that does not read is dropped instead."""
        try:
            if self.outbox.stuck is None and await self.outbox.flush(bound):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(bound):
                        code, reason = (
                            close_frame(ending.error) if ending.error else (ending.close_code, b"")
                        )
                        await self.ws.close(code=1000 if ending.gone else code, message=reason)
                        return
            self.abort()  # the client does not read: no close handshake to wait for
        finally:
            await self.let_go()

    async def replaced(self, bound: float) -> None:
        """Another connection resumed the session: tell this one (4009) and close it."""
        await self.stop_reading()
        error = Replaced("another connection resumed this session")
        self.outbox.put(protocol.error(error))
        code, reason = close_frame(error)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(bound):
                await self.outbox.flush(bound)
                await self.ws.close(code=code, message=reason)
        await self.let_go()

    async def stop_reading(self) -> None:
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def let_go(self) -> None:
        """Stop reading and writing; whoever waits for this connection may return."""
        await self.stop_reading()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
        self.over.set()
