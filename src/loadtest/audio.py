"""Classroom audio for load tests: per-group tones with speech-like pauses, or a WAV file."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

FRAME_SECONDS = 0.1
TALK_SECONDS = 2.6
PAUSE_SECONDS = 0.4


def group_frequency(index: int) -> int:
    """A distinct tone per group (20 Hz apart), so transcripts can be traced to their group."""
    return 200 + 20 * (index % 150)


def group_audio(index: int, seconds: float, sample_rate: int = 16000) -> bytes:
    """Tone bursts at the group's frequency with short pauses, like a child talking."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave_ = np.sin(2 * np.pi * group_frequency(index) * t) * 0.3
    cycle = TALK_SECONDS + PAUSE_SECONDS
    talking = (t % cycle) < TALK_SECONDS
    return bytes((wave_ * talking * 32767).astype("<i2").tobytes())


def load_wav(path: Path, sample_rate: int = 16000) -> bytes:
    """Mono s16le PCM from a WAV file recorded at ``sample_rate``."""
    with wave.open(str(path)) as reader:
        if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono PCM")
        if reader.getframerate() != sample_rate:
            raise ValueError(f"{path}: need {sample_rate} Hz, got {reader.getframerate()}")
        return bytes(reader.readframes(reader.getnframes()))


def frames(pcm: bytes, sample_rate: int = 16000, seconds: float = FRAME_SECONDS) -> list[bytes]:
    step = 2 * round(seconds * sample_rate)
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
