"""Text to speech with espeak-ng, resampled to 16 kHz mono PCM with sox."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

SAMPLE_RATE = 16000


class ToolMissing(RuntimeError):
    """espeak-ng or sox is not installed."""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: install the Debian package {package}")
    return path


def speak(text: str, *, voice: str, speed: int, level_db: float = 0.0) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 samples at 16 kHz (−1…1), scaled by
    ``level_db``."""
    wav = subprocess.run(
        [_tool("espeak-ng", "espeak-ng"), "-v", voice, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    raw = subprocess.run(
        [
            _tool("sox", "sox"),
            "-D",  # no dither: the same text gives the same samples, so runs can be compared
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-",
        ],
        input=wav,
        check=True,
        capture_output=True,
    ).stdout
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples * np.float32(10 ** (level_db / 20))
