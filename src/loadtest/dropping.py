"""A group whose connection the network takes away (``stt-loadtest classroom --drops N``).

Each such group streams through a TCP proxy of its own on loopback
(:class:`~loadtest.proxy.CuttingProxy`), which the harness cuts at ``drops``
random moments — a reset, no close frame — while the gateway's client library
(:class:`gateway.client.ListenStream`) resumes the session each time and sends
the audio again from where the gateway has it. What the group received is
then verified like any other: one session, every window once, tiling the
audio sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from gateway.client import ListenStream, StreamRefused
from loadtest.audio import FRAME_SECONDS, frames
from loadtest.proxy import CuttingProxy
from loadtest.verify import GroupResult


def through(proxy: CuttingProxy, url: str) -> str:
    """``url`` with its host and port those of ``proxy`` (ws:// only: the proxy is plain
    TCP, and a certificate would not name 127.0.0.1)."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError("--drops needs a ws:// URL (its proxy runs on loopback)")
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def cut_points(frame_count: int, drops: int, rng: random.Random) -> set[int]:
    """The frames before which the connection is cut: ``drops`` distinct ones, none at the
    very start."""
    return set(rng.sample(range(1, frame_count), min(drops, max(0, frame_count - 1))))


async def run_dropping_group(
    url: str,
    jwt: str,
    result: GroupResult,
    pcm: bytes,
    *,
    drops: int,
    rng: random.Random,
    sample_rate: int = 16000,
    pace: float = FRAME_SECONDS,
    on_message: Callable[[dict[str, object]], None] | None = None,
    finish_timeout: float = 120.0,
) -> GroupResult:
    parts = urlsplit(url)
    proxy = await CuttingProxy((parts.hostname or "127.0.0.1", parts.port or 80)).start()
    chunks = list(frames(pcm, sample_rate))
    cuts = cut_points(len(chunks), drops, rng)
    started = time.monotonic()
    try:
        async with ListenStream(through(proxy, url), jwt, sample_rate=sample_rate) as stream:

            async def send() -> None:
                next_at = time.monotonic()
                for i, chunk in enumerate(chunks):
                    if i in cuts:
                        proxy.cut()
                    await stream.send(chunk)
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
        result.reconnects = stream.resumes
    finally:
        await proxy.close()
    return result


def _received(
    result: GroupResult,
    message: dict[str, object],
    started: float,
    on_message: Callable[[dict[str, object]], None] | None,
) -> None:
    result.messages.append(message)
    if message.get("type") == "Begin" and not result.connected:
        result.connected = True
        result.connect_ms = (time.monotonic() - started) * 1000
    if on_message is not None:
        on_message(message)
