"""What a session takes as audio (pure): frames of whole samples within ``MAX_FRAME_BYTES``,
not far ahead of real time, and a first look at whether the audio is what was declared."""

from __future__ import annotations

from gateway.errors import BacklogOverflow, BadAudio, FrameTooLarge, StreamError
from gateway.stream.limits import SessionLimits
from gateway.stream.protocol import StreamConfig
from gateway.stream.suspect import AudioCheck

#: Audio may arrive ahead of real time by this many times the backlog bound before 4029.
AHEAD_FACTOR = 2.0


class AudioGate:
    def __init__(self, config: StreamConfig, limits: SessionLimits, now: float) -> None:
        self.sample_bytes = 2 * config.channels
        self.max_frame_bytes = limits.max_frame_bytes
        self._sample_rate = config.sample_rate
        self._started = now
        self._ahead_limit = AHEAD_FACTOR * limits.max_pending_seconds
        #: Until it has judged the audio (then None: no more work per frame).
        self.suspect: AudioCheck | None = AudioCheck(config.sample_rate, self.sample_bytes)

    def refusal(self, size: int) -> StreamError:
        """Why a frame of ``size`` bytes is refused (called once the quick test failed)."""
        if size > self.max_frame_bytes:
            most = self.max_frame_bytes
            return FrameTooLarge(f"frame of {size} bytes exceeds MAX_FRAME_BYTES ({most})")
        return BadAudio("audio frames must hold whole 16-bit samples")

    def too_far_ahead(self, received_samples: int, now: float) -> StreamError | None:
        ahead = received_samples / self._sample_rate - (now - self._started)
        if ahead > self._ahead_limit:
            message = f"audio is arriving much faster than real time ({ahead:.0f} s ahead)"
            return BacklogOverflow(message)
        return None

    def judge(self, data: bytes, now: float) -> str | None:
        """A ``SUSPECT_AUDIO`` message once the audio looks unlike what was declared."""
        assert self.suspect is not None
        message = self.suspect.feed(data, now)
        if self.suspect.done:
            self.suspect = None
        return message
