"""A session's clocks (pure): the token's expiry, idleness, and the bound on finishing."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import IdleTimeout, SessionExpired, StreamError


@dataclass(slots=True)
class Deadlines:
    idle_timeout: float
    expires_at: float
    last_activity: float
    #: Set when the session starts finishing: unanswered windows are dropped then.
    finish_by: float | None = None

    def next(self, *, reading: bool) -> float | None:
        """When to look again: expiry or idleness while reading, else the finishing bound."""
        if reading:
            return min(self.last_activity + self.idle_timeout, self.expires_at)
        return self.finish_by

    def expired(self, now: float) -> StreamError | None:
        """Why a session still reading must end now, if it must."""
        if now >= self.expires_at:
            return SessionExpired("the token expired; reconnect with a new token")
        if now >= self.last_activity + self.idle_timeout:
            return IdleTimeout(f"no audio or KeepAlive for {self.idle_timeout:g} seconds")
        return None

    def finishing_over(self, now: float) -> bool:
        """True once, when the bound on finishing has passed."""
        if self.finish_by is None or now < self.finish_by:
            return False
        self.finish_by = None
        return True
