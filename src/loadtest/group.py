"""One classroom group: connect, stream paced audio, CloseStream, collect everything."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from loadtest.audio import FRAME_SECONDS, frames
from loadtest.verify import GroupResult

OPEN_TIMEOUT = 20.0


#: Close codes after which a group reconnects (shutdown, overloaded) and streams the rest.
RECONNECT_CODES = frozenset({1001, 1013})
MAX_ATTEMPTS = 20
#: A gateway that cannot be reached for this long is given up on (it is gone, not
#: restarting); the wait between tries while it is away grows to UNREACHABLE_WAIT_MAX.
GIVE_UP_SECONDS = 30.0
UNREACHABLE_WAIT_MAX = 5.0


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
    reconnect: bool = True,
    give_up_after: float = GIVE_UP_SECONDS,
) -> GroupResult:
    """Stream ``pcm`` in real-time frames (``pace`` seconds apart; 0 = as fast as possible).

    With ``reconnect``, a session the gateway ends with 1001 (it is shutting down) is
    followed by another — retried after a backoff while refused with 1013 (overloaded,
    draining; the server's ``retry_after`` when it gave one) — streaming the audio from
    where the last ``Termination`` says the gateway had received it: every second is sent
    and accounted for once, over as many sessions as it takes. A group's first connection
    refused is reported as such, not retried; a gateway that cannot be reached for
    ``give_up_after`` seconds is given up on, with that as the group's error.
    """
    offset = 0
    reached_at = time.monotonic()  # when the gateway last answered
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            result.reconnects += 1
        outcome = await _session(
            url, jwt, result, pcm[offset:], sample_rate, pace, on_message, finish_timeout
        )
        if outcome is None:
            return result  # ended for good (done, or not to be retried)
        accounted, wait, reached = outcome
        offset += int(accounted * sample_rate) * 2
        if not reconnect or offset >= len(pcm):
            return result
        if reached:
            reached_at = time.monotonic()
            delay = min(30.0, wait if wait is not None else 0.2 * 2**attempt)
        else:
            away = time.monotonic() - reached_at
            if away >= give_up_after:
                result.error = f"gateway unreachable for {away:.0f} s ({result.error}): gave up"
                return result
            delay = min(UNREACHABLE_WAIT_MAX, 0.2 * 2**attempt, give_up_after - away)
        await asyncio.sleep(delay)
    return result


async def _send_audio(
    ws: ClientConnection, reader: asyncio.Task[None], pcm: bytes, sample_rate: int, pace: float
) -> None:
    """Send the audio frame by frame at ``pace`` seconds a frame, until the gateway ends."""
    next_at = time.monotonic()
    for frame in frames(pcm, sample_rate):
        if reader.done():
            return
        try:
            await ws.send(frame)
        except ConnectionClosed:
            return  # the gateway ended the session: its last messages are read after
        if pace:
            next_at += pace
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


async def _session(
    url: str,
    jwt: str,
    result: GroupResult,
    pcm: bytes,
    sample_rate: int,
    pace: float,
    on_message: Callable[[dict[str, object]], None] | None,
    finish_timeout: float,
) -> tuple[float, float | None, bool] | None:
    """One connection. None when the group is done; else (seconds the gateway accounted
    for, the wait it asked for, whether the gateway answered) when it should reconnect."""
    started = time.monotonic()
    try:
        async with connect(
            url,
            subprotocols=["token", jwt],  # type: ignore[list-item]
            open_timeout=OPEN_TIMEOUT,
            max_size=None,
            compression=None,
            ping_interval=None,
        ) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
            result.messages.append(first)
            if first.get("type") != "Begin":
                result.error = str(first.get("code"))
                await _drain(ws, result, on_message, 5.0)
                # A first connection refused is reported (the capacity it measures); a
                # reconnection refused (a replica draining) is tried again.
                if result.connected and result.close_code in RECONNECT_CODES:
                    wait = first.get("retry_after")
                    retry = float(wait) if isinstance(wait, int | float) else None
                    return 0.0, retry, True
                return None
            if not result.connected:
                result.connected = True
                result.connect_ms = (time.monotonic() - started) * 1000
            result.error = None
            reader = asyncio.create_task(_drain(ws, result, on_message, None))
            await _send_audio(ws, reader, pcm, sample_rate, pace)
            if not reader.done():
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(reader, finish_timeout)
    except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
        if isinstance(exc, InvalidStatus):
            result.error = f"HTTP {exc.response.status_code}"
        else:
            result.error = result.error or type(exc).__name__
        if result.connected and isinstance(exc, OSError | InvalidHandshake):
            return 0.0, None, False  # the replica is gone: try again (the balancer picks another)
        return None
    if result.close_code in RECONNECT_CODES:
        ended = [m for m in result.messages if m.get("type") == "Termination"]
        accounted = float(ended[-1].get("audio_seconds", 0)) if ended else 0.0
        return accounted, None, True
    return None


async def _drain(
    ws: object,
    result: GroupResult,
    on_message: Callable[[dict[str, object]], None] | None,
    timeout: float | None,
) -> None:
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:  # type: ignore[attr-defined]
                message = json.loads(raw)
                result.messages.append(message)
                if on_message is not None:
                    on_message(message)
    except (ConnectionClosed, TimeoutError):
        pass
    finally:
        result.close_code = ws.close_code  # type: ignore[attr-defined]
