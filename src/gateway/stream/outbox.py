"""A session's one bounded outbox: every message to the client goes through it.

One writer task sends queued messages in order. Whatever a client does, the
outbox holds at most ``max_bytes`` of messages:

- notices that say the same thing again (a ``Warning`` of a code already
  waiting, or sent less than ``min_interval`` ago) are coalesced: counted,
  not queued;
- a client that does not read is a slow consumer: when the queue passes its
  bound, or a message is queued while the one being written has waited for
  ``stall_seconds``, the outbox stops and calls ``on_stuck``; the session then
  ends without waiting for the client (its transport is aborted). (A client
  that stops reading *and* sending is ended by the idle timeout, and the last
  messages at close are bounded by :meth:`flush`.) No timer per message.

Model: the bounded, high/low-water ``Assembler`` of python-websockets.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.stream import protocol

#: Far above anything a reading client accumulates (a Transcript is ~300 bytes).
MAX_BYTES = 256 * 1024
STALL_SECONDS = 20.0
#: A notice with the same key is sent at most this often.
NOTICE_INTERVAL = 1.0


class Outbox:
    def __init__(
        self,
        send: Callable[[str], Awaitable[Any]],
        on_stuck: Callable[[str], None],
        *,
        max_bytes: int = MAX_BYTES,
        stall_seconds: float = STALL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._on_stuck = on_stuck
        self._max_bytes = max_bytes
        self._stall = stall_seconds
        self._clock = clock
        self._queue: deque[tuple[str, str | None]] = deque()
        self._queued_bytes = 0
        self._queued_keys: set[str] = set()
        self._last_sent: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writing_since: float | None = None
        self.stuck: str | None = None
        self.coalesced = 0
        self.sent = 0

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: dict[str, Any], *, key: str | None = None) -> bool:
        """Queue ``message``; False when it was coalesced or the outbox is stuck.
        ``key`` marks a notice: one per key waits at a time, one per key per interval."""
        if self.stuck is not None:
            return False
        if self._writing_since is not None and self._clock() - self._writing_since >= self._stall:
            self._give_up(f"one message could not be written for {self._stall:g} s")
            return False
        if key is not None and (
            key in self._queued_keys
            or self._clock() - self._last_sent.get(key, -NOTICE_INTERVAL) < NOTICE_INTERVAL
        ):
            self.coalesced += 1
            return False
        text = protocol.encode(message)
        if self._queued_bytes + len(text) > self._max_bytes:
            self._give_up(f"more than {self._max_bytes} bytes waiting for the client to read")
            return False
        self._queue.append((text, key))
        self._queued_bytes += len(text)
        if key is not None:
            self._queued_keys.add(key)
        self._idle.clear()
        self._wakeup.set()
        return True

    async def run(self) -> None:
        """The writer: send in order until cancelled or stuck."""
        while self.stuck is None:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            text, key = self._queue[0]
            self._writing_since = self._clock()
            try:
                await self._send(text)
            except Exception as exc:  # the connection is gone
                self._give_up(f"the connection failed ({type(exc).__name__})")
                return
            finally:
                self._writing_since = None
            self._queue.popleft()
            self._queued_bytes -= len(text)
            self.sent += 1
            if key is not None:
                self._queued_keys.discard(key)
                self._last_sent[key] = self._clock()

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued is written (True), or ``timeout`` / stuck (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return self.stuck is None and not self._queue

    def _give_up(self, why: str) -> None:
        if self.stuck is None:
            self.stuck = why
            self._queue.clear()
            self._queued_keys.clear()
            self._queued_bytes = 0
            self._idle.set()
            self._wakeup.set()
            self._on_stuck(why)
