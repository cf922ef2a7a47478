"""One classroom group: connect, stream paced audio, CloseStream, collect everything."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from loadtest.audio import FRAME_SECONDS, frames
from loadtest.verify import GroupResult

OPEN_TIMEOUT = 20.0


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
) -> GroupResult:
    """Stream ``pcm`` in real-time frames (``pace`` seconds apart; 0 = as fast as possible)."""
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
                return result
            result.connected = True
            result.connect_ms = (time.monotonic() - started) * 1000
            reader = asyncio.create_task(_drain(ws, result, on_message, None))
            next_at = time.monotonic()
            for frame in frames(pcm, sample_rate):
                if reader.done():
                    break
                await ws.send(frame)
                if pace:
                    next_at += pace
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
            if not reader.done():
                await ws.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(reader, finish_timeout)
    except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
        if isinstance(exc, InvalidStatus):
            result.error = f"HTTP {exc.response.status_code}"
        else:
            result.error = result.error or type(exc).__name__
    return result


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
