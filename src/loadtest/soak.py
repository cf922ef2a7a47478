"""Soak: groups that stream and reconnect for a long time, with memory sampled from /metrics.

The gateway's ``process_resident_memory_bytes`` and ``process_open_fds`` are
sampled every few seconds; after the warm-up a least-squares slope of RSS
over time is reported in MB/hour and judged against a limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from loadtest.audio import group_audio, group_frequency
from loadtest.classroom import ClassroomConfig, tokens_for
from loadtest.group import run_group
from loadtest.report import build_report
from loadtest.verify import GroupResult


@dataclass(frozen=True)
class SoakConfig:
    classroom: ClassroomConfig
    metrics_url: str
    session_seconds: float = 120.0
    sample_every: float = 10.0
    warmup: float = 300.0
    max_growth_mb_per_hour: float = 10.0


def slope_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) samples, in value units per hour."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 3600


def parse_sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _sampler(url: str, every: float, out: list[dict[str, float]], started: float) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as r:
                    text = await r.text()
                rss = parse_sample(text, "process_resident_memory_bytes")
                fds = parse_sample(text, "process_open_fds")
                if rss is not None:
                    out.append(
                        {
                            "t": round(time.monotonic() - started, 2),
                            "rss_mb": rss / 2**20,
                            "open_fds": fds or 0.0,
                        }
                    )
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(every)


async def run_soak(config: SoakConfig) -> dict[str, Any]:
    classroom = config.classroom
    jwts = tokens_for(classroom)
    results: list[GroupResult] = []
    started = time.monotonic()
    deadline = started + classroom.duration
    samples: list[dict[str, float]] = []
    sampler = asyncio.create_task(
        _sampler(config.metrics_url, config.sample_every, samples, started)
    )

    async def group(index: int, jwt: str) -> None:
        session = 0
        while time.monotonic() < deadline:
            seconds = min(config.session_seconds, max(1.0, deadline - time.monotonic()))
            pcm = group_audio(index, seconds, classroom.sample_rate)
            result = GroupResult(
                group_id=f"{classroom.group_prefix}-{index}",
                index=index,
                frequency=group_frequency(index),
                audio_seconds=len(pcm) / 2 / classroom.sample_rate,
                reconnects=1 if session else 0,
            )
            results.append(result)
            await run_group(classroom.url, jwt, result, pcm, pace=classroom.pace)
            session += 1

    await asyncio.gather(*(group(i, jwt) for i, jwt in enumerate(jwts)))
    sampler.cancel()
    report = build_report(
        results, classroom.thresholds, check_text=True, duration=classroom.duration
    )
    after = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= config.warmup]
    slope = slope_per_hour(after)
    report["soak"] = {
        "sessions": len(results),
        "samples": samples,
        "warmup_seconds": config.warmup,
        "rss_mb_first_after_warmup": after[0][1] if after else None,
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "rss_growth_mb_per_hour": None if slope is None else round(slope, 3),
        "open_fds_last": samples[-1]["open_fds"] if samples else None,
        "max_growth_mb_per_hour": config.max_growth_mb_per_hour,
    }
    if slope is None:
        report["breaches"].append("not enough memory samples after warm-up to judge growth")
    elif slope > config.max_growth_mb_per_hour:
        report["breaches"].append(
            f"RSS grows {slope:.1f} MB/h after warm-up > {config.max_growth_mb_per_hour} MB/h"
        )
    report["verdict"] = "fail" if report["breaches"] else "pass"
    return report
