"""WAV containers for windows (pure)."""

from __future__ import annotations

import struct


def wav_bytes(pcm: bytes | bytearray | memoryview, sample_rate: int, channels: int = 1) -> bytes:
    """A canonical 44-byte-header PCM s16le WAV file holding ``pcm``."""
    size = len(pcm)
    byte_rate = sample_rate * channels * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        byte_rate,
        channels * 2,
        16,
        b"data",
        size,
    )
    return b"".join((header, pcm))
