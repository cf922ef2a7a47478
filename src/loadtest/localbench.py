"""Local Whisper throughput on this machine: ``python -m loadtest.localbench``.

Transcribes 5-second windows cut from a spoken lesson with the local model,
with 1 and 2 workers, and prints windows per second, the real-time factor
(seconds of compute per second of audio) and how many classroom groups that
serves: a group that speaks ``--speech-share`` of the time sends that share
of its audio upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.transcriber import TranscriptionRequest
from loadtest.quality.lessons import lesson
from loadtest.quality.recording import build
from loadtest.quality.runner import _wav

WINDOW_SECONDS = 5.0


async def measure(model: str, workers: int, windows: list[bytes]) -> dict[str, float]:
    transcriber = LocalTranscriber(model=model, device="auto", compute_type="auto", workers=workers)
    await transcriber.load()
    requests = [
        TranscriptionRequest(wav=_wav(pcm, 16000), model=model, duration=len(pcm) / 32000)
        for pcm in windows
    ]
    await transcriber.transcribe(requests[0])  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(transcriber.transcribe(r) for r in requests))
    wall = time.perf_counter() - started
    await transcriber.close()
    audio = sum(r.duration for r in requests)
    return {
        "workers": workers,
        "windows": len(requests),
        "windows_per_second": round(len(requests) / wall, 2),
        "real_time_factor": round(wall / audio, 4),
        "audio_seconds_per_second": round(audio / wall, 1),
    }


async def main(args: argparse.Namespace) -> None:
    recording = build(lesson("science"), "quiet")
    step = 2 * round(WINDOW_SECONDS * 16000)
    windows = [recording.pcm[i : i + step] for i in range(0, len(recording.pcm) - step, step)]
    windows = (windows * (args.windows // len(windows) + 1))[: args.windows]
    print("| workers | windows/s | real-time factor | audio s per s | groups served |")
    print("|---|---|---|---|---|")
    for workers in (1, 2):
        row = await measure(args.model, workers, windows)
        groups = row["audio_seconds_per_second"] / args.speech_share
        print(
            f"| {workers} | {row['windows_per_second']} | {row['real_time_factor']} | "
            f"{row['audio_seconds_per_second']} | {groups:.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--speech-share", type=float, default=0.5)
    asyncio.run(main(parser.parse_args()))
