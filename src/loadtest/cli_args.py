"""The command line of ``stt-loadtest``: one function per verb's options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from gateway import __version__
from gateway.simulated.whisper import MODES

Verb = Callable[[str, str], argparse.ArgumentParser]


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help shows its default."""


def parser(description: str | None) -> argparse.ArgumentParser:
    """``stt-loadtest`` and its verbs."""
    top = argparse.ArgumentParser(
        prog="stt-loadtest", description=description, formatter_class=_Help
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    fake_whisper(
        verb("fake-whisper", "run an OpenAI-compatible simulated Whisper (faults on demand)")
    )
    scenario(verb("classroom", "N groups stream at real time; verify, report, judge"))
    spike(scenario(verb("spike", "a classroom while the fake upstream fails (alerts should fire)")))
    soak(scenario(verb("soak", "reconnecting groups for a long time; judge memory growth")))
    quality(
        verb(
            "quality",
            "stream real speech with a known script through a gateway; report word error rate "
            "(also of the same model on the whole file and on naive 5 s chunks), seconds billed, "
            "text inside long pauses and latency",
        )
    )
    capacity(verb("capacity", "benchmark: bare WebSocket sink vs the gateway, same load"))
    return top


def fake_whisper(fake: argparse.ArgumentParser) -> argparse.ArgumentParser:
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
    fake.add_argument(
        "--retry-after-ms", type=float, help="also send retry-after-ms on 429s and 500s"
    )
    fake.add_argument("--mode", choices=MODES, default="normal", help="answer every request so")
    fake.add_argument("--seed", type=int, help="random seed for the fault rates")
    return fake


def _secret_options(p: argparse.ArgumentParser, why: str) -> None:
    p.add_argument(
        "--secret",
        help=f"AUTH_JWT_SECRET, {why} (visible to other users in ps: prefer --secret-file)",
    )
    p.add_argument(
        "--secret-file",
        type=Path,
        help=f"a file holding AUTH_JWT_SECRET, {why}; without either, $AUTH_JWT_SECRET, "
        "else the dev secret in $DATA_DIR (./data)/jwt-secret",
    )


def resolve_secret(args: argparse.Namespace) -> str | None:
    """The JWT secret the harness mints with: ``--secret``, ``--secret-file``, then
    ``$AUTH_JWT_SECRET``, then the dev secret a local gateway keeps in its data dir."""
    if getattr(args, "secret", None):
        return str(args.secret)
    if getattr(args, "secret_file", None):
        return str(Path(args.secret_file).read_text().strip())
    if os.environ.get("AUTH_JWT_SECRET"):
        return os.environ["AUTH_JWT_SECRET"]
    kept = Path(os.environ.get("DATA_DIR") or "data") / "jwt-secret"
    return kept.read_text().strip() if kept.is_file() else None


def scenario(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--url", required=True, help="listen endpoint, e.g. ws://127.0.0.1:8080/api/v1/listen"
    )
    p.add_argument("--groups", type=int, default=25, help="classroom groups streaming at once")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of audio per group")
    _secret_options(p, "to mint one token per group")
    p.add_argument("--token-file", type=Path, help="one JWT per line, one per group")
    p.add_argument("--school", default="s-1", help="school_id of the minted tokens")
    p.add_argument("--audio", type=Path, help="16 kHz mono WAV to stream (default: tones)")
    p.add_argument("--max-p95-ms", type=float, default=15000.0, help="fail above this p95 latency")
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
        "--drops",
        type=int,
        default=0,
        help="cut each group's connection this many times at random moments, through a "
        "TCP proxy per group on loopback (ws:// URLs): the client library resumes; every "
        "group is verified across its connections",
    )
    p.add_argument("--seed", type=int, help="seed of the random drop moments")
    p.add_argument(
        "--verify-text",
        choices=("auto", "always", "never"),
        default="auto",
        help="check each group got transcripts of its own tone (auto: when the "
        "gateway says its upstream is simulated)",
    )
    return p


def spike(spike: argparse.ArgumentParser) -> argparse.ArgumentParser:
    spike.add_argument(
        "--fake-url", required=True, help="the fake-whisper base URL, e.g. http://127.0.0.1:9000"
    )
    spike.add_argument("--fault", choices=("500", "429"), default="500", help="fault to inject")
    spike.add_argument(
        "--fault-after", type=float, default=10.0, help="seconds before the fault starts"
    )
    spike.add_argument("--fault-seconds", type=float, default=60.0, help="how long it lasts")
    return spike


def soak(soak: argparse.ArgumentParser) -> argparse.ArgumentParser:
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
    return soak


def quality(quality: argparse.ArgumentParser) -> argparse.ArgumentParser:
    quality.add_argument(
        "--url", required=True, help="listen endpoint, e.g. ws://127.0.0.1:8080/api/v1/listen"
    )
    _secret_options(quality, "to mint a token per run")
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
    quality.add_argument(
        "--interims",
        action="store_true",
        help="stream each lesson twice, without and with interim_results, and report the "
        "first-words latency of both",
    )
    quality.add_argument("--out-dir", type=Path, help="keep each lesson's WAV, script and times")
    quality.add_argument("--json", type=Path, help="write the report here")
    quality.add_argument("--markdown", type=Path, help="write the table here")
    return limits(quality)


def limits(quality: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The quality verb's limits (exit 1 past one) and class vocabulary."""
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
    return quality


def capacity(cap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    cap.add_argument(
        "--steps", default="100,250,500,1000", help="concurrent real-time streams per step"
    )
    cap.add_argument("--step-seconds", type=float, default=20.0, help="length of each step")
    cap.add_argument(
        "--upstream-latency-ms", type=float, default=300.0, help="the simulated Whisper's latency"
    )
    cap.add_argument("--window-seconds", type=float, default=5.0, help="STT_WINDOW_SECONDS")
    cap.add_argument("--loaders", type=int, default=2, help="load-generator processes")
    cap.add_argument(
        "--interims",
        choices=("off", "local", "openai"),
        default="off",
        help="also run each step with interim_results (gateway-interims): live words from the "
        "local model in the gateway, or from the simulated Whisper (openai)",
    )
    cap.add_argument(
        "--servers", help="only these servers, comma-separated (sink,gateway-silent,gateway,…)"
    )
    cap.add_argument(
        "--overload",
        type=int,
        metavar="STREAMS",
        help="two more gateway steps, with admission as configured, streams over "
        "--overload-ramp seconds: exactly what the steps (admission off) say it serves, then "
        "this many (more than it serves): admitted, refused (and how soon), the admitted "
        "streams' drops and latency, goodput, judged against both",
    )
    cap.add_argument(
        "--overload-ramp",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="the overload step's streams arrive over this long",
    )
    cap.add_argument("--cpus", help="pin the gateway to these CPUs (taskset -c), e.g. 0")
    cap.add_argument("--json", type=Path, help="write the results here")
    cap.add_argument("--markdown", type=Path, help="write a docs-ready table here")
    return cap
