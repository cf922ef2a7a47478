"""Which upstream notices a classroom hears, and how often (pure).

A rate-limited upstream is said at most every few seconds; an open circuit
and refused credentials once, until a window is transcribed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.stream import protocol

RATE_LIMIT_WARNING_INTERVAL = 5.0


@dataclass(slots=True)
class Notices:
    last_rate_warning: float = -float("inf")
    held_warned: bool = False
    credentials_warned: bool = False

    def rate_limited(self, now: float) -> dict[str, Any] | None:
        if now - self.last_rate_warning < RATE_LIMIT_WARNING_INTERVAL:
            return None
        self.last_rate_warning = now
        return protocol.warning(
            "RATE_LIMITED", "the transcription service is rate limiting; retrying"
        )

    def held(self) -> dict[str, Any] | None:
        if self.held_warned:
            return None
        self.held_warned = True
        return protocol.warning(
            "STT_UNAVAILABLE", "the transcription service is unavailable; audio is being held"
        )

    def credentials_rejected(self) -> dict[str, Any] | None:
        if self.credentials_warned:
            return None
        self.credentials_warned = True
        return protocol.warning(
            "UPSTREAM_REJECTED",
            "the transcription service refused the gateway's credentials; "
            "an operator must fix its API key",
        )

    def about(self, kind: str, now: float) -> dict[str, Any] | None:
        """The notice for an upstream event ``kind`` (``rate_limited``, ``held``,
        ``credentials_rejected``), or None when it was said already."""
        if kind == "rate_limited":
            return self.rate_limited(now)
        return self.held() if kind == "held" else self.credentials_rejected()

    def recovered(self) -> None:
        """A window was transcribed: the next outage or refusal is worth saying again."""
        self.held_warned = self.credentials_warned = False
