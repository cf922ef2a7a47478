"""The seam between the gateway and any speech-to-text upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    wav: bytes
    model: str
    duration: float
    language: str | None = None
    prompt: str | None = None
    filename: str = "window.wav"
    content_type: str = "audio/wav"
    #: A live guess (an interim): one greedy decode, no retries at higher temperatures.
    quick: bool = False


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment as Whisper reports it (``verbose_json``, or the local model)."""

    start: float
    end: float
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


@dataclass(frozen=True, slots=True)
class TranscriptionResult:
    text: str
    #: Seconds the upstream billed (``usage.seconds``), when it said.
    billed_seconds: float | None = None
    #: Per-segment detail, when the upstream gives it.
    segments: tuple[Segment, ...] = ()


class Transcriber(Protocol):
    """One upstream attempt. Raises :class:`gateway.errors.UpstreamError` leaves only."""

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult: ...

    async def close(self) -> None: ...
