"""``stt-loadtest``: fake-whisper, classroom, spike, soak, quality, capacity."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.signals import wait_for_stop_signal
from gateway.simulated.whisper import Behaviour, FakeWhisper, start
from loadtest.cli_args import parser, resolve_secret
from loadtest.report import Thresholds, render


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    if hasattr(args, "secret"):
        args.secret = resolve_secret(args)
    if args.verb == "fake-whisper":
        return _fake_whisper_main(args)
    if args.verb == "capacity":
        from loadtest.capacity import main as capacity_main

        return capacity_main(args)
    if args.verb == "quality":
        from loadtest.quality.cli import main as quality_main

        return asyncio.run(quality_main(args))
    return asyncio.run(_scenario(args))


def _thresholds(args: argparse.Namespace) -> Thresholds:
    return Thresholds(max_p95_ms=args.max_p95_ms, max_error_ratio=args.max_error_ratio)


async def _scenario(args: argparse.Namespace) -> int:
    from loadtest.classroom import ClassroomConfig, run_classroom

    tokens: list[str] = []
    if args.token_file:
        tokens = [t.strip() for t in args.token_file.read_text().splitlines() if t.strip()]
    config = ClassroomConfig(
        url=args.url,
        groups=args.groups,
        duration=args.duration,
        school=args.school,
        secret=args.secret,
        tokens=tokens,
        audio=args.audio,
        thresholds=_thresholds(args),
        progress="off" if args.no_progress else "bar" if sys.stderr.isatty() else "lines",
        verify_text=args.verify_text,
        drops=args.drops,
        seed=args.seed,
    )
    try:
        if args.verb == "classroom":
            report = await run_classroom(config)
        elif args.verb == "spike":
            from loadtest.spike import run_spike

            report = await run_spike(
                config, args.fake_url, args.fault, args.fault_after, args.fault_seconds
            )
        else:
            from loadtest.soak import SoakConfig, run_soak

            report = await run_soak(
                SoakConfig(
                    classroom=config,
                    metrics_url=args.metrics_url,
                    session_seconds=args.session_seconds,
                    sample_every=args.sample_every,
                    warmup=args.warmup,
                    max_growth_mb_per_hour=args.max_growth_mb_per_hour,
                )
            )
    except ValueError as exc:
        print(f"stt-loadtest {args.verb}: {exc}", file=sys.stderr)
        return 2
    _emit(report, args.json)
    if report.get("interrupted"):
        return 130  # as a shell reports a run stopped by Ctrl-C
    return 0 if report["verdict"] == "pass" else 1


def _emit(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2) + "\n")
    if "verification_problems" in report:
        print(render(report))
    else:
        print(json.dumps(report, indent=2))


def _fake_whisper_main(args: argparse.Namespace) -> int:
    for name in ("rate_429", "rate_quota", "rate_5xx", "rate_garbage"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            print(
                f"stt-loadtest: --{name.replace('_', '-')} must be between 0 and 1", file=sys.stderr
            )
            return 2
    behaviour = Behaviour(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_429=args.rate_429,
        rate_quota=args.rate_quota,
        rate_5xx=args.rate_5xx,
        rate_garbage=args.rate_garbage,
        retry_after=args.retry_after,
        retry_after_ms=args.retry_after_ms,
        mode=args.mode,
        seed=args.seed,
    )
    asyncio.run(_fake_whisper(FakeWhisper(behaviour), args.host, args.port))
    return 0


async def _fake_whisper(fake: FakeWhisper, host: str, port: int) -> None:
    runner, url = await start(fake, host, port)
    print(f"simulated Whisper listening on {url} (OPENAI_BASE_URL={url})", flush=True)
    await wait_for_stop_signal()
    await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
