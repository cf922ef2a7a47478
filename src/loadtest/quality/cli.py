"""``stt-loadtest quality``: build the recordings, stream each, score, report, judge."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.auth.tokens import mint
from loadtest.quality import runner
from loadtest.quality.lessons import NOISE_LEVELS, SENTENCES, lesson
from loadtest.quality.recording import Recording, build, from_files
from loadtest.quality.speech import ToolMissing


def _choices(value: str, known: dict[str, Any], what: str) -> list[str]:
    chosen = list(known) if value == "all" else value.split(",")
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}: {', '.join(known)} or all")
    return chosen


def recordings(args: argparse.Namespace) -> list[tuple[str, str, Recording]]:
    if args.audio or args.reference:
        if not (args.audio and args.reference):
            raise ValueError("--audio and --reference go together")
        return [(args.audio.stem, "as recorded", from_files(args.audio, args.reference))]
    made = []
    for name in _choices(args.lesson, SENTENCES, "lesson"):
        for noise in _choices(args.noise, NOISE_LEVELS, "noise level"):
            made.append((name, noise, build(lesson(name, sentences=args.sentences), noise)))
    return made


def _token(args: argparse.Namespace, name: str, noise: str) -> str:
    if args.token:
        return str(args.token)
    if not args.secret:
        raise ValueError("give --secret (to mint tokens) or --token")
    return mint(
        args.secret,
        school_id=args.school,
        group_id=f"quality-{name}-{noise}".replace(" ", "-"),
        role="student",
        ttl_seconds=7200,
    )


async def main(args: argparse.Namespace) -> int:
    try:
        made = recordings(args)
        tokens = [_token(args, name, noise) for name, noise, _ in made]
    except (ValueError, ToolMissing, OSError) as exc:
        print(f"stt-loadtest quality: {exc}", file=sys.stderr)
        return 2
    rows = []
    baselines = None if args.no_baselines else runner.Baselines(args.model)
    if baselines is not None:
        await baselines.__aenter__()
    try:
        for (name, noise, recording), token in zip(made, tokens, strict=True):
            if args.out_dir:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                recording.save(args.out_dir / f"{name}-{noise}.wav".replace(" ", "-"))
            print(
                f"quality: streaming {name} ({noise}, {recording.seconds:.0f} s) "
                f"at {args.speed:g}× real time",
                file=sys.stderr,
                flush=True,
            )
            streamed = await runner.stream(args.url, token, recording, args.speed)
            whole = chunks = None
            if baselines is not None:
                whole = await baselines.whole(recording)
                chunks = await baselines.chunks(recording)
            rows.append(
                runner.score(
                    name,
                    noise,
                    recording,
                    streamed,
                    speed=args.speed,
                    whole_text=whole,
                    chunk_text=chunks,
                )
            )
    finally:
        if baselines is not None:
            await baselines.__aexit__()
    table = runner.markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    if args.max_wer is not None:
        worst = max(row["wer"] for row in rows)
        if worst > args.max_wer:
            print(f"FAIL: WER {worst:.3f} above --max-wer {args.max_wer}", file=sys.stderr)
            return 1
        print(f"PASS: every WER ≤ {args.max_wer}", file=sys.stderr)
    return 0
