"""What a session has to say, in order, until the driver takes it (pure).

Messages wait here between the core's decision and the driver's
:meth:`~gateway.stream.core.SessionCore.take_actions`. A notice carries a key
(``Warning:<code>``) so the outbox can coalesce repeats; once the session is
over (its last message queued, or the client gone) nothing more is accepted.
"""

from __future__ import annotations

from typing import Any

Queued = tuple[dict[str, Any], str | None]


class Outgoing:
    def __init__(self) -> None:
        self._queued: list[Queued] = []
        self.closed = False

    def __bool__(self) -> bool:
        return bool(self._queued)

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._queued.append((message, None))

    def notify(self, message: dict[str, Any] | None) -> None:
        """A notice: a ``Warning`` whose code is already waiting (or was just sent) is
        coalesced by the outbox, so no sequence of client frames can grow it."""
        if message is None or self.closed:
            return
        key = f"Warning:{message['code']}" if message["type"] == "Warning" else None
        self._queued.append((message, key))

    def take(self) -> list[Queued]:
        taken, self._queued = self._queued, []
        return taken

    def drop(self) -> None:
        """The client is gone: nothing waiting will be sent, nor anything later."""
        self._queued.clear()
        self.closed = True
