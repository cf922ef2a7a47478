"""Audio material for tests: tones, silence, speech-like bursts."""

from __future__ import annotations

import numpy as np


def tone(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.3) -> bytes:
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def silence(seconds: float, sample_rate: int = 16000) -> bytes:
    return bytes(2 * round(seconds * sample_rate))


def frames(pcm: bytes, frame_seconds: float = 0.1, sample_rate: int = 16000) -> list[bytes]:
    step = 2 * round(frame_seconds * sample_rate)
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
