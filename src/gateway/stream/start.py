"""What a session starts with (pure): who streams, what they asked for, the bounds, and
how the session may be resumed — and the ``Begin`` that says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.auth.tokens import Claims
from gateway.stream import protocol
from gateway.stream.deadlines import Deadlines
from gateway.stream.ending import Counts
from gateway.stream.limits import SessionLimits
from gateway.stream.protocol import StreamConfig
from gateway.stream.resume import RESUME_FAILED, Resumable, Settled
from gateway.stream.windowing import Windower


@dataclass(frozen=True, slots=True)
class SessionStart:
    session_id: str
    claims: Claims
    config: StreamConfig
    limits: SessionLimits
    #: ``openai``, ``local`` or ``simulated``: where finals come from.
    provider: str
    #: The prompt of the class's vocabulary (names, subject words).
    vocabulary: str
    #: Seconds until the token expires.
    expires_in: float
    #: The first window's target and model (later ones are steered).
    window_seconds: float
    model: str
    #: Live words every so often (None: no ``Interim``).
    interim_interval: float | None = None
    #: The token a client resumes with, and how long a dropped session waits (0: never).
    resume_token: str = ""
    resume_seconds: float = 0.0
    #: The client asked to resume a session that is gone: this one is new.
    resume_failed: bool = False
    #: A session taken over from another replica: where it stood, and the last seq its
    #: client has (the Transcripts after it are replayed).
    settled: Settled | None = None
    last_seq: int = -1

    @property
    def audio_offset(self) -> float:
        """Seconds of audio the session had before this replica took it (0: a new one)."""
        settled = self.settled
        return 0.0 if settled is None else settled.samples / self.config.sample_rate

    def counts(self) -> Counts:
        counts = Counts()
        if self.settled is not None:
            for name, value in self.settled.counts.items():
                setattr(counts, name, type(getattr(counts, name))(value))
        return counts

    def resumable(self) -> Resumable:
        resume = Resumable(self.resume_token, self.resume_seconds)
        if self.settled is not None:
            resume.kept.extend(self.settled.kept)
        return resume

    def after_begin(self) -> list[dict[str, Any]]:
        """What follows ``Begin``: the warning of a resume that failed, or the replay of a
        session taken over."""
        if self.resume_failed:
            return [protocol.warning("RESUME_FAILED", RESUME_FAILED)]
        if self.settled is None:
            return []
        return [t for t in self.settled.kept if t["seq"] > self.last_seq]

    def windower(self) -> Windower:
        limits = self.limits
        windower = Windower(
            self.config.sample_rate,
            self.window_seconds,
            limits.vad,
            max_seconds=limits.window_max_seconds,
            shorten_pauses=limits.shorten_pauses,
        )
        if self.settled is not None:
            windower.continue_at(self.settled.next_seq, self.settled.samples)
        return windower

    def deadlines(self, now: float) -> Deadlines:
        return Deadlines(self.limits.idle_timeout, now + self.expires_in, now)

    def begin(
        self, claims: Claims, *, window_seconds: float, resumed: bool, at: float
    ) -> dict[str, Any]:
        """``Begin`` for a connection of this session (``claims``: that connection's token),
        which has audio up to ``at`` seconds."""
        return protocol.begin(
            self.session_id,
            claims,
            self.config,
            window_seconds=window_seconds,
            provider=self.provider,
            interim_results=bool(self.interim_interval),
            resume_token=self.resume_token,
            resume_seconds=self.resume_seconds,
            resumed=resumed,
            audio_seconds=at,
        )
