"""A capacity load generator (its own process): real-time streams of tone or silence.

``python -m loadtest.capacity_loader --url … --streams N --seconds S`` prints one
JSON line of counts, error kinds and transcript latencies when its streams end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from gateway.auth.tokens import mint

FRAME_BYTES = 3200  # 100 ms of 16 kHz s16le
SECRET = "capacity-benchmark-secret-0123456789abcdef"

COUNTS = ("connected", "held", "frames", "late_frames", "dropped", "interims")


def empty_stats() -> dict[str, Any]:
    """What a loader reports: counts, error kinds and transcript latencies."""
    return {**dict.fromkeys(COUNTS, 0), "errors": [], "latency_ms": [], "refused_ms": []}


async def _stream(
    url: str, jwt: str, seconds: float, start_delay: float, stats: dict[str, Any], pcm: bytes
) -> None:
    from websockets.asyncio.client import connect

    await asyncio.sleep(start_delay)
    asked = time.monotonic()
    try:
        async with connect(
            url,
            subprotocols=["token", jwt],  # type: ignore[list-item, unused-ignore]
            open_timeout=30,
            max_size=None,
            compression=None,
            ping_interval=None,
        ) as ws:
            begin = json.loads(await ws.recv())
            if begin.get("type") != "Begin":
                stats["errors"].append(str(begin.get("code")))
                if begin.get("code") == "OVERLOADED" and begin.get("retry_after"):
                    stats["refused_ms"].append(round((time.monotonic() - asked) * 1000))
                return
            stats["connected"] += 1

            async def read() -> None:
                async for raw in ws:
                    m = json.loads(raw)
                    if m.get("type") == "Interim":
                        stats["interims"] += 1
                    elif m.get("type") == "Transcript" and m.get("status") == "ok":
                        stats["latency_ms"].append(m["latency_ms"])
                    elif m.get("type") == "Transcript" and m.get("status") == "dropped":
                        stats["dropped"] += 1
                    elif m.get("type") == "Error":
                        stats["errors"].append(m.get("code"))

            reader = asyncio.create_task(read())
            frames = round(seconds * 10)
            next_at = time.monotonic()
            for i in range(frames):
                offset = (i * FRAME_BYTES) % (len(pcm) - FRAME_BYTES)
                await ws.send(pcm[offset : offset + FRAME_BYTES])
                stats["frames"] += 1
                next_at += 0.1
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats["late_frames"] += 1
            await ws.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(reader, 60)
            stats["held"] += 1
    except Exception as exc:
        stats["errors"].append(type(exc).__name__)


async def _loader(
    url: str, streams: int, seconds: float, first: int, ramp: float, silent: bool
) -> None:
    sample_rate = 16000
    t = np.arange(sample_rate * 3) / sample_rate
    stats = empty_stats()
    tasks = []
    for i in range(streams):
        index = first + i
        amplitude = 0.0 if silent else 0.3
        tone = (np.sin(2 * np.pi * (200 + index % 500) * t) * amplitude * 32767).astype("<i2")
        jwt = mint(
            SECRET,
            school_id=f"bench-{index}",
            group_id="g",
            role="student",
            ttl_seconds=int(seconds) + 600,
        )
        tasks.append(_stream(url, jwt, seconds, ramp * i / max(1, streams), stats, tone.tobytes()))
    await asyncio.gather(*tasks)
    print(json.dumps(stats), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.capacity_loader")
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--interims", action="store_true", help="ask for interim_results")
    ns = parser.parse_args()
    url = f"{ns.url}?interim_results=true" if ns.interims else ns.url
    asyncio.run(_loader(url, ns.streams, ns.seconds, ns.first, ns.ramp, ns.silent))


if __name__ == "__main__":
    main()
