"""One classroom group: stream paced audio through the gateway's client library
(:class:`gateway.client.ListenStream`), CloseStream, collect everything.

The library does what a classroom's own client does: a session the gateway ends with
1001 (it is shutting down) is followed by another on whichever replica answers —
after its ``retry_after`` (jittered) while reconnections are refused with 1013 —
streaming from where the last ``Termination`` says the gateway had the audio; a
dropped connection is resumed. A group's *first* connection refused is reported as
such, not retried (the capacity a run measures); a gateway unreachable for
``give_up_after`` seconds is given up on, with that as the group's error. With
``drops``, the group streams through a TCP proxy of its own that the harness cuts at
that many random moments (:mod:`loadtest.dropping`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from gateway.client import ListenStream, StreamRefused
from loadtest.audio import FRAME_SECONDS, frames
from loadtest.dropping import Cutter
from loadtest.verify import GroupResult

OPEN_TIMEOUT = 20.0
#: Connections tried in a row without a ``Begin`` before a group stops.
MAX_ATTEMPTS = 20
#: A gateway that cannot be reached for this long is given up on (it is gone, not
#: restarting).
GIVE_UP_SECONDS = 30.0
#: Audio a group keeps to send again (more than any gateway's resume window and backlog).
KEEP_SECONDS = 300.0


async def run_group(
    url: str,
    jwt: str,
    result: GroupResult,
    pcm: bytes,
    *,
    sample_rate: int = 16000,
    pace: float = FRAME_SECONDS,
    on_message: Callable[[dict[str, object]], None] | None = None,
    finish_timeout: float = 120.0,
    give_up_after: float = GIVE_UP_SECONDS,
    drops: int = 0,
    rng: random.Random | None = None,
) -> GroupResult:
    """Stream ``pcm`` in real-time frames (``pace`` seconds apart; 0 = as fast as
    possible) and record what the gateway said in ``result``."""
    chunks = list(frames(pcm, sample_rate))
    async with Cutter(url, len(chunks), drops, rng or random.Random()) as cutter:
        stream = ListenStream(
            cutter.url,
            jwt,
            sample_rate=sample_rate,
            keep_seconds=min(len(pcm) / 2 / sample_rate, KEEP_SECONDS) + 1,
            max_attempts=MAX_ATTEMPTS,
            retry_refused=False,
            give_up_after=give_up_after,
            open_timeout=OPEN_TIMEOUT,
        )
        started = time.monotonic()
        async with stream:

            async def send() -> None:
                next_at = time.monotonic()
                for i, chunk in enumerate(chunks):
                    cutter.before(i)
                    await stream.send(chunk)
                    if pace:
                        next_at += pace
                        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await stream.finish()

            sender = asyncio.create_task(send())
            try:
                async with asyncio.timeout(len(chunks) * pace + finish_timeout):
                    async for message in stream:
                        _received(result, message, started, on_message)
            except StreamRefused as exc:
                result.error = str(exc)
            except TimeoutError:
                result.error = "no Termination in time"
            finally:
                sender.cancel()
        result.close_code = stream.close_code
        result.reconnects += stream.resumes
    return result


def _received(
    result: GroupResult,
    message: dict[str, object],
    started: float,
    on_message: Callable[[dict[str, object]], None] | None,
) -> None:
    result.messages.append(message)
    kind = message.get("type")
    if kind == "Begin":
        result.error = None
        if not result.connected:
            result.connected = True
            result.connect_ms = (time.monotonic() - started) * 1000
    elif kind == "Error":
        result.error = str(message.get("code"))
    if on_message is not None:
        on_message(message)
