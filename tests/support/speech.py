"""Real speech for tests: espeak-ng sentences as 16 kHz PCM (skipped loudly without the tools
on a laptop, a failure under CI=true)."""

from __future__ import annotations

import numpy as np

from loadtest.quality.speech import speak
from tests.support.tools import require_tool


def sentence(text: str, voice: str = "en-us", speed: int = 150) -> bytes:
    require_tool("espeak-ng", "espeak-ng")
    require_tool("sox", "sox")
    samples = speak(text, voice=voice, speed=speed)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
