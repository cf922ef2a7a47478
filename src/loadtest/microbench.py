"""CPU per window of the pieces a window goes through (``python -m loadtest.microbench``).

Starts the simulated Whisper in its own process with no latency and measures,
with ``time.process_time`` of this process only, the client CPU of: one
request through the lean aiohttp client (the gateway's default), through the
official openai client (``UPSTREAM_CLIENT=openai-sdk``), and the same
multipart POST with bare aiohttp (the baseline); VAD + WAV building for a
5-second window; and the whole windower (levels, pause choice, shortened
pauses) per minute of talk.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np

from gateway.stream.vad import VadParams, is_speech
from gateway.stream.wav import wav_bytes
from gateway.stream.windowing import Windower
from gateway.stt.aiohttp_transcriber import AiohttpTranscriber
from gateway.stt.openai_transcriber import OpenAITranscriber
from gateway.stt.transcriber import TranscriptionRequest
from loadtest.capacity_servers import Server

RATE = 16000


@contextlib.contextmanager
def simulated_whisper() -> Iterator[str]:
    """The simulated Whisper in a child process (no latency); yields its ``/v1`` URL."""
    with tempfile.TemporaryDirectory(prefix="stt-microbench-") as tmp:
        server = Server("bare-post", Path(tmp), upstream_latency_ms=0.0, window_seconds=0.0)
        try:
            server.start()
            yield f"http://127.0.0.1:{server.port}/v1"
        finally:
            server.stop()


async def cpu_per_call(call: object, n: int) -> float:
    """Client CPU per call, in milliseconds, for ``n`` concurrent calls after a warm-up."""
    for _ in range(20):
        await call()  # type: ignore[operator]
    started = time.process_time()
    await asyncio.gather(*(call() for _ in range(n)))  # type: ignore[operator]
    return (time.process_time() - started) / n * 1000


async def requests_cpu(url: str, wav: bytes, n: int) -> dict[str, float]:
    """Client CPU per request of each OpenAI-wire client and of a bare aiohttp POST."""
    request = TranscriptionRequest(wav=wav, model="whisper-1", duration=5.0)
    results = {}
    for name, kind in (
        ("aiohttp_transcriber_request_ms", AiohttpTranscriber),
        ("openai_sdk_request_ms", OpenAITranscriber),
    ):
        client = kind(api_key="bench", base_url=url, timeout=10)
        results[name] = await cpu_per_call(lambda c=client: c.transcribe(request), n)
        await client.close()
    async with aiohttp.ClientSession() as session:

        async def bare() -> None:
            form = aiohttp.FormData()
            form.add_field("file", wav, filename="window.wav", content_type="audio/wav")
            form.add_field("model", "whisper-1")
            form.add_field("response_format", "verbose_json")
            async with session.post(f"{url}/audio/transcriptions", data=form) as r:
                await r.json()

        results["bare_aiohttp_request_ms"] = await cpu_per_call(bare, n)
    return results


def measure(n: int = 300) -> dict[str, float]:
    t = np.arange(RATE * 5) / RATE
    pcm = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()
    with simulated_whisper() as url:
        results = asyncio.run(requests_cpu(url, wav_bytes(pcm, RATE), n))
    started = time.process_time()
    for _ in range(n):
        is_speech(pcm, RATE, VadParams())
        wav_bytes(pcm, RATE)
    results["vad_and_wav_ms"] = (time.process_time() - started) / n * 1000
    results["windower_per_minute_ms"] = windower_cpu_per_minute()
    return {k: round(v, 3) for k, v in results.items()}


def talk(seconds: float, seed: int = 5) -> bytes:
    """Speech-like audio: bursts of 0.4–3 s of tone with pauses of 0.1–1.5 s, -60 dBFS floor."""
    rng = np.random.default_rng(seed)
    parts = []
    total = 0
    while total < seconds * RATE:
        burst = round(rng.uniform(0.4, 3.0) * RATE)
        gap = round(rng.uniform(0.1, 1.5) * RATE)
        t = np.arange(burst) / RATE
        parts += [np.sin(2 * np.pi * rng.uniform(150, 400) * t) * 0.2, np.zeros(gap)]
        total += burst + gap
    audio = np.concatenate(parts)
    audio += rng.standard_normal(audio.size) * 10 ** (-60 / 20)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def windower_cpu_per_minute(minutes: float = 5.0) -> float:
    """CPU to window one minute of talk arriving in 100 ms messages, in milliseconds."""
    pcm = talk(minutes * 60)
    frame = 2 * RATE // 10
    windower = Windower(RATE, 5.0, max_seconds=15.0)
    started = time.process_time()
    for offset in range(0, len(pcm), frame):
        windower.feed(pcm[offset : offset + frame])
    windower.close()
    return (time.process_time() - started) / minutes * 1000


def main() -> int:
    for name, value in measure().items():
        unit = "per minute of one stream" if "per_minute" in name else "per 5-second window"
        print(f"{name:28s} {value:8.3f} ms CPU {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
