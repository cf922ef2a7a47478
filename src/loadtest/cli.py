"""``stt-loadtest``: fake-whisper (and the classroom scenarios)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from gateway.signals import wait_for_stop_signal
from gateway.simulated.whisper import MODES, Behaviour, FakeWhisper, start


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-loadtest", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    fake = sub.add_parser("fake-whisper", help="run an OpenAI-compatible simulated Whisper")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9000)
    fake.add_argument("--latency-ms", type=float, default=300.0)
    fake.add_argument("--jitter-ms", type=float, default=0.0)
    fake.add_argument("--rate-429", type=float, default=0.0, help="share answered 429")
    fake.add_argument(
        "--rate-quota", type=float, default=0.0, help="share answered 429 insufficient_quota"
    )
    fake.add_argument("--rate-5xx", type=float, default=0.0, help="share answered 500")
    fake.add_argument("--rate-garbage", type=float, default=0.0, help="share answered garbage")
    fake.add_argument("--retry-after", type=float, default=1.0, help="Retry-After on 429s")
    fake.add_argument("--mode", choices=MODES, default="normal")
    fake.add_argument("--seed", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
