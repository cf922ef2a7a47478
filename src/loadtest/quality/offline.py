"""The gateway's windowing and the local model, called directly: for deciding settings.

``python -m loadtest.quality.offline --seeds 7,11,23 [--continuity] [--window 5]``

Each lesson (spoken with several seeds: other pauses, the same words) goes
through the gateway's own :class:`~gateway.stream.windowing.Windower` and
each speech window through the local model in order, with the gateway's
prompt rules (vocabulary, and the previous text when ``--continuity``). No
sockets and no clock: the same input gives the same numbers, many times faster
than real time, so one setting can be compared with another over many
recordings. The numbers of record come from ``stt-loadtest quality`` through a
running gateway (docs/Quality.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from dataclasses import dataclass

from gateway.keyterms import vocabulary_prompt, window_prompt
from gateway.stream.continuity import is_suspect, prompt_tail
from gateway.stream.wav import wav_bytes
from gateway.stream.windowing import Windower
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.suppression import filter_segments
from gateway.stt.transcriber import TranscriptionRequest
from loadtest.quality import scoring
from loadtest.quality.lessons import NOISE_LEVELS, SENTENCES, VOCABULARY, lesson
from loadtest.quality.recording import Recording, build

FRAME_BYTES = 3200  # 100 ms at 16 kHz, as a browser sends it


@dataclass(frozen=True, slots=True)
class Setting:
    window_seconds: float = 5.0
    max_seconds: float = 15.0
    continuity: bool = False
    vocabulary: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    lesson: str
    noise: str
    seed: int
    wer: float
    billed_over_speech: float


async def transcribe(
    model: LocalTranscriber, recording: Recording, setting: Setting, terms: tuple[str, ...]
) -> tuple[str, float]:
    """The transcript a gateway with ``setting`` would send, and the seconds it would bill."""
    windower = Windower(
        recording.sample_rate, setting.window_seconds, max_seconds=setting.max_seconds
    )
    pcm = recording.pcm
    windows = [
        w for i in range(0, len(pcm), FRAME_BYTES) for w in windower.feed(pcm[i : i + FRAME_BYTES])
    ]
    windows += windower.close()
    vocabulary = vocabulary_prompt(terms)
    texts: list[str] = []
    previous = ""
    billed = 0.0
    for window in windows:
        if not window.speech:
            continue
        prompt = window_prompt(vocabulary, previous if setting.continuity else "")
        result = await model.transcribe(
            TranscriptionRequest(
                wav=wav_bytes(window.pcm, window.sample_rate),
                model=model.model_name,
                duration=window.sent_seconds,
                prompt=prompt,
            )
        )
        billed += window.sent_seconds
        text = filter_segments(result.segments).text if result.segments else result.text
        texts.append(text)
        if not is_suspect(text):
            previous = prompt_tail(text)
    return " ".join(t for t in texts if t), billed


async def evaluate(
    setting: Setting, lessons: list[str], noises: list[str], seeds: list[int], model_name: str
) -> list[Result]:
    model = LocalTranscriber(model=model_name, device="auto", compute_type="auto", workers=1)
    await model.load()
    results = []
    try:
        for seed in seeds:
            for name in lessons:
                terms = VOCABULARY.get(name, ()) if setting.vocabulary else ()
                for noise in noises:
                    recording = build(lesson(name, seed=seed), noise)
                    text, billed = await transcribe(model, recording, setting, terms)
                    speech = recording.speech_seconds or recording.seconds
                    results.append(
                        Result(
                            name,
                            noise,
                            seed,
                            scoring.wer(recording.script, text),
                            billed / speech,
                        )
                    )
    finally:
        await model.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.quality.offline")
    parser.add_argument("--lesson", default="all", help=f"{', '.join(SENTENCES)} or all")
    parser.add_argument("--noise", default="quiet,classroom", help="none, quiet, classroom")
    parser.add_argument("--seeds", default="7", help="comma-separated lesson seeds")
    parser.add_argument("--window", type=float, default=5.0, help="STT_WINDOW_SECONDS")
    parser.add_argument("--continuity", action="store_true", help="STT_PROMPT_CONTINUITY=true")
    parser.add_argument("--vocabulary", action="store_true", help="each lesson's key terms")
    parser.add_argument("--model", default="tiny.en", help="local model")
    args = parser.parse_args(argv)
    lessons = list(SENTENCES) if args.lesson == "all" else args.lesson.split(",")
    noises = list(NOISE_LEVELS) if args.noise == "all" else args.noise.split(",")
    setting = Setting(args.window, continuity=args.continuity, vocabulary=args.vocabulary)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = asyncio.run(evaluate(setting, lessons, noises, seeds, args.model))
    for r in results:
        print(f"{r.lesson:8s} {r.noise:9s} seed {r.seed:3d}  WER {r.wer:.3f}  "
              f"billed/speech {r.billed_over_speech:.3f}")  # fmt: skip
    print(
        f"mean WER {statistics.mean(r.wer for r in results):.3f} over {len(results)} recordings; "
        f"billed/speech at most {max(r.billed_over_speech for r in results):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
