"""How a session ends: what is sent last, which close code, which metric reason."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import BacklogOverflow, StreamError


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


CLIENT_CLOSE = Ending("client_close", 1000, termination="client_close")
SHUTDOWN = Ending("server_shutdown", 1001, termination="server_shutdown", timeout_reason="SHUTDOWN")
DISCONNECTED = Ending("disconnected", 1006, gone=True)
#: The client stopped reading (its outbox is full or stalled): dropped like a vanished one.
SLOW_CONSUMER = Ending("disconnected", 1008, gone=True)


def from_error(exc: StreamError) -> Ending:
    return Ending(exc.end_reason, exc.close_code, error=exc)
