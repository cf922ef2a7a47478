"""What a session starts with (pure): who streams, what they asked for, the bounds, and
how the session may be resumed — and the ``Begin`` that says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.auth.tokens import Claims
from gateway.stream import protocol
from gateway.stream.deadlines import Deadlines
from gateway.stream.limits import SessionLimits
from gateway.stream.protocol import StreamConfig
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

    def windower(self) -> Windower:
        limits = self.limits
        return Windower(
            self.config.sample_rate,
            self.window_seconds,
            limits.vad,
            max_seconds=limits.window_max_seconds,
            shorten_pauses=limits.shorten_pauses,
        )

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
