"""One closed window of a stream's audio: where it lies in the stream, and what is sent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """One closed window of audio, ready for transcription.

    ``pcm`` is what is sent upstream: the window's audio with long pauses
    shortened, so it may be shorter than ``end - start``.
    """

    seq: int
    start_sample: int
    end_sample: int
    sample_rate: int
    pcm: bytes
    from_finalize: bool
    speech: bool
    #: Seconds of voiced 20 ms frames in the window.
    voiced_seconds: float = 0.0

    @property
    def start(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def duration(self) -> float:
        return (self.end_sample - self.start_sample) / self.sample_rate

    @property
    def sent_seconds(self) -> float:
        """Seconds of audio sent upstream (and billed, unless the upstream says otherwise)."""
        return len(self.pcm) / 2 / self.sample_rate
