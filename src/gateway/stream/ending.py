"""How a session ends: what is sent last, which close code, which metric reason, and the
counts its ``Termination`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import BacklogOverflow, BudgetExhausted, StreamError
from gateway.stream import protocol
from gateway.stream.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Ending:
    metric_reason: str
    close_code: int
    #: ``Termination.reason`` for clean endings.
    termination: str | None = None
    #: ``Error`` for error endings.
    error: StreamError | None = None
    #: The client is gone: nothing more can be sent.
    gone: bool = False
    #: Reason given to windows still unanswered when the finish timeout runs out.
    timeout_reason: str = "STT_UNAVAILABLE"

    @property
    def drops_backlog(self) -> bool:
        return isinstance(self.error, BacklogOverflow)

    def last_message(self, audio_seconds: float, counts: Counts) -> dict[str, Any]:
        """``Error`` for an error ending, else ``Termination`` with the session's counts."""
        if self.error is not None:
            return protocol.error(self.error)
        return protocol.termination(
            reason=self.termination or self.metric_reason,
            audio_seconds=audio_seconds,
            windows=counts.windows,
            transcribed=counts.ok,
            silence=counts.silence,
            dropped=counts.dropped,
            cost_usd=counts.cost_usd,
        )


CLIENT_CLOSE = Ending("client_close", 1000, termination="client_close")
SHUTDOWN = Ending("server_shutdown", 1001, termination="server_shutdown", timeout_reason="SHUTDOWN")
DISCONNECTED = Ending("disconnected", 1006, gone=True)
#: The client stopped reading (its outbox is full or stalled): dropped like a vanished one.
SLOW_CONSUMER = Ending("disconnected", 1008, gone=True)


def outranks(new: Ending, current: Ending) -> bool:
    """Whether ``new`` replaces an ending already chosen (the first ending wins otherwise):
    a school out of budget is told so (4402, do not reconnect) even when the client, or a
    shutdown, had already asked for a clean end — protocol.md: the session ends with 4402
    once earlier windows are delivered."""
    return isinstance(new.error, BudgetExhausted) and current.error is None and not current.gone


def from_error(exc: StreamError) -> Ending:
    return Ending(exc.end_reason, exc.close_code, error=exc)


@dataclass(slots=True)
class Counts:
    windows: int = 0
    ok: int = 0
    silence: int = 0
    dropped: int = 0
    cost_usd: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.windows += 1
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.cost_usd += outcome.cost_usd

    def as_dict(self) -> dict[str, int]:
        return {
            "windows": self.windows,
            "ok": self.ok,
            "silence": self.silence,
            "dropped": self.dropped,
        }
