"""``stt-loadtest quality``: build the recordings, stream each, score, report, judge."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import aiohttp

from gateway.auth.tokens import mint
from loadtest.quality import runner
from loadtest.quality.lessons import NOISE_LEVELS, SENTENCES, VOCABULARY, lesson
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
            terms = [*args.keyterm, *(VOCABULARY.get(name, ()) if args.vocabulary else ())]
            whole = chunks = None
            if baselines is not None:
                whole = await baselines.whole(recording, terms)
                chunks = await baselines.chunks(recording, keyterms=terms)
            for interims in (False, True) if args.interims else (False,):
                try:
                    streamed = await runner.stream(
                        args.url, token, recording, args.speed, terms, interims=interims
                    )
                except (runner.Refused, aiohttp.ClientError, OSError) as exc:
                    print(f"stt-loadtest quality: {exc}", file=sys.stderr)
                    return 2
                rows.append(
                    runner.score(
                        name,
                        noise,
                        recording,
                        streamed,
                        speed=args.speed,
                        whole_text=whole,
                        chunk_text=chunks,
                        keyterms=terms,
                    )
                )
    finally:
        if baselines is not None:
            await baselines.__aexit__()
    return _report(rows, args)


def _report(rows: list[dict[str, Any]], args: argparse.Namespace) -> int:
    """Print and save the table; judge the runs (exit 1 on a limit passed)."""
    table = runner.markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    failures = judge(rows, args)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if failures:
        return 1
    if args.max_wer is not None or args.max_wer_over_whole is not None:
        print("PASS: every run within its limits", file=sys.stderr)
    return 0


def judge(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Every limit a run breaks, in words."""
    failures = []
    for row in rows:
        run = f"{row['lesson']} ({row['noise']})"
        if args.max_wer is not None and row["wer"] > args.max_wer:
            failures.append(f"{run}: WER {row['wer']:.3f} above --max-wer {args.max_wer}")
        whole = row["wer_whole_file"]
        if args.max_wer_over_whole is not None:
            if whole is None:
                failures.append(f"{run}: --max-wer-over-whole needs the baselines")
            elif row["wer"] > whole + args.max_wer_over_whole + 1e-9:
                failures.append(
                    f"{run}: WER {row['wer']:.3f} above the whole file's {whole:.3f} "
                    f"+ {args.max_wer_over_whole}"
                )
        if args.whole_sentences and row["cuts_inside_sentences"]:
            failures.append(f"{run}: {row['cuts_inside_sentences']} windows end inside a sentence")
        if args.latency_target and row["late_sentences"]:
            failures.append(f"{run}: {row['late_sentences']} sentences past the latency target")
        ratio = row["billed_over_speech"]
        limit = args.max_billed_over_speech
        if limit is not None and ratio is not None and ratio > limit:
            failures.append(f"{run}: billed {ratio:.3f}× the speech, above {limit}")
    return failures
