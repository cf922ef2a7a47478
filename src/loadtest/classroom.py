"""The classroom scenario: N groups at once, verified, reported, judged."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway.auth.tokens import mint
from loadtest.audio import FRAME_SECONDS, group_audio, group_frequency, load_wav
from loadtest.group import run_group
from loadtest.report import Thresholds, build_report
from loadtest.verify import GroupResult


@dataclass(frozen=True)
class ClassroomConfig:
    url: str
    groups: int = 25
    duration: float = 60.0
    school: str = "s-1"
    secret: str | None = None
    tokens: Sequence[str] = ()
    audio: Path | None = None
    sample_rate: int = 16000
    pace: float = FRAME_SECONDS
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: ``bar`` (a terminal), ``lines`` (a plain line every few seconds, for logs and CI), ``off``.
    progress: str = "bar"
    group_prefix: str = "group"
    #: Check that each group's transcripts describe its own tone: auto = when simulated.
    verify_text: str = "auto"
    #: Cut each group's connection this many times, at random moments (a proxy per group).
    drops: int = 0
    seed: int | None = None


def tokens_for(config: ClassroomConfig) -> list[str]:
    if config.tokens:
        if len(config.tokens) < config.groups:
            raise ValueError(f"{len(config.tokens)} tokens for {config.groups} groups")
        return list(config.tokens[: config.groups])
    if not config.secret:
        raise ValueError("give --secret (to mint tokens) or --token-file")
    return [
        mint(
            config.secret,
            school_id=config.school,
            group_id=f"{config.group_prefix}-{i}",
            role="student",
            ttl_seconds=int(config.duration) + 3600,
        )
        for i in range(config.groups)
    ]


PROGRESS_EVERY = 10.0


async def _progress_lines(progress: _Progress, started: float) -> None:
    """Plain progress lines when stderr is not a terminal (a log file, CI)."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        print(progress.line(time.monotonic() - started), file=sys.stderr, flush=True)


class _Progress:
    """What the classroom has received so far: a bar on a terminal, counts for the lines."""

    def __init__(self, config: ClassroomConfig) -> None:
        self.bar = tqdm(
            total=config.groups * max(1, round(config.duration)),
            unit="s audio",
            disable=config.progress != "bar",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self.counts = {"transcripts": 0, "warnings": 0, "errors": 0}
        self.total = config.groups * max(1, round(config.duration))
        #: Seconds of audio transcribed: counted here, as a disabled bar counts nothing.
        self.seconds = 0

    def line(self, elapsed: float) -> str:
        counts = self.counts
        return (
            f"progress: {self.seconds}/{self.total} s of audio transcribed after "
            f"{elapsed:.0f} s; transcripts={counts['transcripts']} "
            f"warnings={counts['warnings']} errors={counts['errors']}"
        )

    def seen(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "Transcript":
            self.counts["transcripts"] += 1
            start, end = message.get("start"), message.get("end")
            if isinstance(start, int | float) and isinstance(end, int | float):
                self.seconds += round(end - start)
                self.bar.update(round(end - start))
        elif kind == "Warning":
            self.counts["warnings"] += 1
        elif kind == "Error":
            self.counts["errors"] += 1
        self.bar.set_postfix(self.counts, refresh=False)


def _group(
    config: ClassroomConfig,
    jwt: str,
    result: GroupResult,
    pcm: bytes,
    rng: random.Random,
    seen: Callable[[dict[str, object]], None],
) -> Coroutine[Any, Any, GroupResult]:
    """One group's run: straight to the gateway, or through a proxy that drops it."""
    return run_group(
        config.url,
        jwt,
        result,
        pcm,
        sample_rate=config.sample_rate,
        pace=config.pace,
        on_message=seen,
        drops=config.drops,
        rng=rng,
    )


async def run_classroom(config: ClassroomConfig) -> dict[str, Any]:
    jwts = tokens_for(config)
    wav = load_wav(config.audio, config.sample_rate) if config.audio else None
    results: list[GroupResult] = []
    progress = _Progress(config)
    bar, seen = progress.bar, progress.seen
    tasks = []
    rng = random.Random(config.seed)
    for i, jwt in enumerate(jwts):
        pcm = wav if wav is not None else group_audio(i, config.duration, config.sample_rate)
        result = GroupResult(
            group_id=f"{config.group_prefix}-{i}",
            index=i,
            frequency=None if wav is not None else group_frequency(i),
            audio_seconds=len(pcm) / 2 / config.sample_rate,
        )
        results.append(result)
        tasks.append(_group(config, jwt, result, pcm, random.Random(rng.random()), seen))
    started = time.monotonic()
    reporter = (
        asyncio.create_task(_progress_lines(progress, started))
        if config.progress == "lines"
        else None
    )
    running = [asyncio.create_task(task) for task in tasks]
    interrupted = False
    try:
        await asyncio.gather(*running)
    except asyncio.CancelledError:  # Ctrl-C: what was received so far is the report
        interrupted = True
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    if reporter is not None:
        reporter.cancel()
    bar.close()
    simulated = any(m.get("simulated") for r in results for m in r.of_type("Begin"))
    check_text = wav is None and (
        config.verify_text == "always" or (config.verify_text == "auto" and simulated)
    )
    report = build_report(
        results, config.thresholds, check_text=check_text, duration=config.duration
    )
    report["verified_text"] = check_text
    report["wall_seconds"] = round(time.monotonic() - started, 2)
    report["simulated_upstream"] = simulated
    report["interrupted"] = interrupted
    if interrupted:
        report["verdict"] = "interrupted"
    return report
