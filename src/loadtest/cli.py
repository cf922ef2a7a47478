"""``stt-loadtest``: fake-whisper, classroom, spike, soak, capacity."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.signals import wait_for_stop_signal
from gateway.simulated.whisper import MODES, Behaviour, FakeWhisper, start
from loadtest.report import Thresholds, render


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help shows its default."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stt-loadtest", description=__doc__, formatter_class=_Help
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    fake = verb("fake-whisper", "run an OpenAI-compatible simulated Whisper (faults on demand)")
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on")
    fake.add_argument("--port", type=int, default=9000, help="port to listen on")
    fake.add_argument("--latency-ms", type=float, default=300.0, help="time to answer")
    fake.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency, up to")
    fake.add_argument("--rate-429", type=float, default=0.0, help="share answered 429")
    fake.add_argument(
        "--rate-quota", type=float, default=0.0, help="share answered 429 insufficient_quota"
    )
    fake.add_argument("--rate-5xx", type=float, default=0.0, help="share answered 500")
    fake.add_argument("--rate-garbage", type=float, default=0.0, help="share answered garbage")
    fake.add_argument("--retry-after", type=float, default=1.0, help="Retry-After on 429s")
    fake.add_argument("--mode", choices=MODES, default="normal", help="answer every request so")
    fake.add_argument("--seed", type=int, help="random seed for the fault rates")

    def scenario(name: str, help_text: str) -> argparse.ArgumentParser:
        p = verb(name, help_text)
        p.add_argument(
            "--url", required=True, help="listen endpoint, e.g. ws://127.0.0.1:8080/api/v1/listen"
        )
        p.add_argument("--groups", type=int, default=25, help="classroom groups streaming at once")
        p.add_argument("--duration", type=float, default=60.0, help="seconds of audio per group")
        p.add_argument("--secret", help="AUTH_JWT_SECRET, to mint one token per group")
        p.add_argument("--token-file", type=Path, help="one JWT per line, one per group")
        p.add_argument("--school", default="s-1", help="school_id of the minted tokens")
        p.add_argument("--audio", type=Path, help="16 kHz mono WAV to stream (default: tones)")
        p.add_argument(
            "--max-p95-ms", type=float, default=15000.0, help="fail above this p95 latency"
        )
        p.add_argument(
            "--max-error-ratio",
            type=float,
            default=0.01,
            help="fail above this share of dropped windows and failed connections",
        )
        p.add_argument("--json", type=Path, help="write the report here")
        p.add_argument(
            "--no-progress",
            action="store_true",
            help="no progress (default: a bar on a terminal, a plain line every 10 s otherwise)",
        )
        p.add_argument(
            "--verify-text",
            choices=("auto", "always", "never"),
            default="auto",
            help="check each group got transcripts of its own tone (auto: when the "
            "gateway says its upstream is simulated)",
        )
        return p

    scenario("classroom", "N groups stream at real time; verify, report, judge")
    spike = scenario("spike", "a classroom while the fake upstream fails (alerts should fire)")
    spike.add_argument(
        "--fake-url", required=True, help="the fake-whisper base URL, e.g. http://127.0.0.1:9000"
    )
    spike.add_argument("--fault", choices=("500", "429"), default="500", help="fault to inject")
    spike.add_argument(
        "--fault-after", type=float, default=10.0, help="seconds before the fault starts"
    )
    spike.add_argument("--fault-seconds", type=float, default=60.0, help="how long it lasts")
    soak = scenario("soak", "reconnecting groups for a long time; judge memory growth")
    soak.add_argument("--metrics-url", required=True, help="the gateway's /metrics URL")
    soak.add_argument(
        "--session-seconds",
        type=float,
        default=120.0,
        help="each group reconnects after this much audio",
    )
    soak.add_argument(
        "--sample-every", type=float, default=10.0, help="seconds between memory samples"
    )
    soak.add_argument(
        "--warmup", type=float, default=300.0, help="seconds left out of the growth fit"
    )
    soak.add_argument(
        "--max-growth-mb-per-hour", type=float, default=10.0, help="fail above this RSS growth"
    )

    quality = verb(
        "quality",
        "stream real speech with a known script through a gateway; report word error rate "
        "(also of the same model on the whole file and on naive 5 s chunks), seconds billed, "
        "text inside long pauses and latency",
    )
    quality.add_argument(
        "--url", required=True, help="listen endpoint, e.g. ws://127.0.0.1:8080/api/v1/listen"
    )
    quality.add_argument("--secret", help="AUTH_JWT_SECRET, to mint a token per run")
    quality.add_argument("--token", help="a stream token (instead of --secret)")
    quality.add_argument("--school", default="s-1", help="school_id of minted tokens")
    quality.add_argument(
        "--lesson",
        default="all",
        help="science, reading, maths, or all (spoken by espeak-ng)",
    )
    quality.add_argument(
        "--noise", default="quiet", help="none, quiet (-60 dBFS), classroom (-45 dBFS), or all"
    )
    quality.add_argument(
        "--sentences", type=int, help="speak only the first N sentences of each lesson"
    )
    quality.add_argument("--audio", type=Path, help="your own 16-bit mono WAV (with --reference)")
    quality.add_argument("--reference", type=Path, help="what is said in --audio (plain text)")
    quality.add_argument(
        "--speed", type=float, default=1.0, help="stream this many times faster than real time"
    )
    quality.add_argument(
        "--model",
        default="tiny.en",
        help="local model for the whole-file and naive-chunk baselines",
    )
    quality.add_argument(
        "--no-baselines", action="store_true", help="skip the whole-file and chunk baselines"
    )
    quality.add_argument("--out-dir", type=Path, help="keep each lesson's WAV, script and times")
    quality.add_argument("--json", type=Path, help="write the report here")
    quality.add_argument("--markdown", type=Path, help="write the table here")
    quality.add_argument("--max-wer", type=float, help="exit 1 when a gateway WER is above this")
    quality.add_argument(
        "--max-wer-over-whole",
        type=float,
        help="exit 1 when a gateway WER is above the whole-file WER plus this (e.g. 0.03)",
    )
    quality.add_argument(
        "--max-billed-over-speech",
        type=float,
        help="exit 1 when seconds billed are above this many times the seconds of speech",
    )
    quality.add_argument(
        "--latency-target",
        action="store_true",
        help="exit 1 when a sentence's words arrive later than the window target + the "
        "upstream's time + 0.5 s",
    )
    quality.add_argument(
        "--whole-sentences",
        action="store_true",
        help="exit 1 when a window ends inside a sentence of the lesson",
    )
    quality.add_argument(
        "--vocabulary",
        action="store_true",
        help="pass each lesson's names and subject words to the gateway (keyterm)",
    )
    quality.add_argument(
        "--keyterm",
        action="append",
        default=[],
        help="a word the recording holds, passed as keyterm (repeatable)",
    )

    cap = verb("capacity", "benchmark: bare WebSocket sink vs the gateway, same load")
    cap.add_argument(
        "--steps", default="100,250,500,1000", help="concurrent real-time streams per step"
    )
    cap.add_argument("--step-seconds", type=float, default=20.0, help="length of each step")
    cap.add_argument(
        "--upstream-latency-ms", type=float, default=300.0, help="the simulated Whisper's latency"
    )
    cap.add_argument("--window-seconds", type=float, default=5.0, help="STT_WINDOW_SECONDS")
    cap.add_argument("--loaders", type=int, default=2, help="load-generator processes")
    cap.add_argument("--json", type=Path, help="write the results here")
    cap.add_argument("--markdown", type=Path, help="write a docs-ready table here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
