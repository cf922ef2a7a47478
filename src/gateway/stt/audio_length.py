"""How many seconds an uploaded file can be billed for, from its bytes (pure).

An upstream bills what it decodes, and decoders read to the end of the file
whatever a header says. So the passthrough reserves from the bytes present:

- a RIFF/WAVE file must be what its header says: a data chunk whose declared
  size is not the bytes that follow it (0, 0xFFFFFFFF, or any other lie), a
  missing ``fmt`` chunk or trailing bytes that are not whole chunks →
  :class:`~gateway.errors.BadAudio` (400). PCM, float and G.711 WAVs are then
  measured exactly, from the sample rate, channels and sample size (never the
  header's byte-rate field);
- every other format is measured at its lowest bit rate (the most seconds its
  bytes could hold): MP3 at 8 kbit/s, everything else at 6 kbit/s (Opus's
  lowest; Ogg, WebM, MP4/M4A, FLAC and unknown containers).

What is reserved is a bound, not a guess; the passthrough never settles more
than it reserved (:mod:`gateway.web.openai.transcriptions`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from gateway.errors import BadAudio

#: Bytes per second at each format's lowest bit rate.
LOWEST_BYTES_PER_SECOND = {"mp3": 1000, "other": 750}
#: WAVE format tags measured exactly: PCM, IEEE float, A-law, µ-law, extensible.
_EXACT_TAGS = frozenset({1, 3, 6, 7, 0xFFFE})
MIN_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Length:
    """``seconds`` of audio at most; ``kind``: ``wav`` (exact) or the format assumed."""

    seconds: float
    kind: str

    @property
    def reserve_seconds(self) -> float:
        """What to reserve: whole seconds (upstreams report rounded-up usage)."""
        return float(max(1, math.ceil(self.seconds - 1e-9)))


def billable_length(data: bytes) -> Length:
    """The longest audio ``data`` may decode to. Raises :class:`BadAudio` for a WAV that
    lies about its size."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return Length(max(MIN_SECONDS, _wav_seconds(data)), "wav")
    kind = "mp3" if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3") else "other"
    return Length(max(MIN_SECONDS, len(data) / LOWEST_BYTES_PER_SECOND[kind]), kind)


def _wav_seconds(data: bytes) -> float:
    offset, fmt, data_seconds = 12, None, None
    while offset < len(data):
        if len(data) - offset < 8:
            raise BadAudio("the WAV file ends inside a chunk header")
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = offset + 8
        present = len(data) - body
        if chunk_id == b"data":
            if fmt is None:
                raise BadAudio("the WAV file has no fmt chunk before its data")
            if data_seconds is not None:
                raise BadAudio("the WAV file has more than one data chunk")
            if size > present or size == 0:
                raise BadAudio(
                    f"the WAV data chunk declares {size} bytes but {present} follow: "
                    "the header does not describe the file"
                )
            data_seconds = _seconds(fmt, size, len(data))
        elif size > present:
            raise BadAudio(f"the WAV chunk {chunk_id!r} declares more bytes than the file has")
        elif chunk_id == b"fmt ":
            fmt = _format(data[body : body + size])
        offset = body + size + (size & 1)
    if data_seconds is None:
        raise BadAudio("the WAV file has no data chunk")
    return data_seconds


def _format(body: bytes) -> tuple[int, int, int, int]:
    """(tag, channels, sample rate, bits per sample) of a ``fmt`` chunk."""
    if len(body) < 16:
        raise BadAudio("the WAV fmt chunk is too short")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
    if not 1 <= channels <= 16 or not 1000 <= rate <= 384_000 or bits not in (8, 16, 24, 32):
        raise BadAudio("the WAV fmt chunk describes no audio the gateway can measure")
    return tag, channels, rate, bits


def _seconds(fmt: tuple[int, int, int, int], size: int, file_size: int) -> float:
    tag, channels, rate, bits = fmt
    if tag in _EXACT_TAGS:
        return size / (rate * channels * bits // 8)
    return file_size / LOWEST_BYTES_PER_SECOND["other"]
