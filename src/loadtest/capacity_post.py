"""The per-window baseline (its own process): bare aiohttp multipart POSTs of a window.

``python -m loadtest.capacity_post --url … --rate R --seconds S`` posts the WAV a
speaking capacity stream makes (a 5-second tone window, ``verbose_json`` like
the gateway asks of Whisper models) ``R`` times a second for ``S`` seconds,
all concurrently as they come due, and prints one JSON line with its own CPU
seconds (``time.process_time``), the posts answered and the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
import numpy as np

from gateway.stream.wav import wav_bytes

RATE = 16000


def window_wav(seconds: float) -> bytes:
    """A window of the capacity loader's speaking tone."""
    t = np.arange(round(RATE * seconds)) / RATE
    return wav_bytes((np.sin(2 * np.pi * 200 * t) * 0.3 * 32767).astype("<i2").tobytes(), RATE)


async def post_all(url: str, rate: float, seconds: float, window_seconds: float) -> dict[str, Any]:
    wav = window_wav(window_seconds)
    counts = {"posts": 0, "errors": 0}

    async def post(session: aiohttp.ClientSession) -> None:
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="window.wav", content_type="audio/wav")
        form.add_field("model", "whisper-1")
        form.add_field("response_format", "verbose_json")
        try:
            async with session.post(url, data=form, headers={"Authorization": "Bearer b"}) as r:
                await r.json()
                counts["posts" if r.status == 200 else "errors"] += 1
        except (aiohttp.ClientError, OSError, ValueError):
            counts["errors"] += 1

    started = time.process_time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        tasks = []
        begin = time.monotonic()
        for i in range(round(rate * seconds)):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(session)))
        await asyncio.gather(*tasks)
    return {**counts, "cpu_seconds": time.process_time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.capacity_post")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="posts per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--window-seconds", type=float, default=5.0)
    ns = parser.parse_args()
    print(json.dumps(asyncio.run(post_all(ns.url, ns.rate, ns.seconds, ns.window_seconds))))


if __name__ == "__main__":
    main()
