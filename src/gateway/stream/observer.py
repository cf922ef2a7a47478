"""What a session reports for metrics, as it happens (never text or audio)."""

from __future__ import annotations

from typing import Protocol

from gateway.stream.audio_window import Window
from gateway.stream.outcome import Outcome


class Observer(Protocol):
    """What the core reports for metrics (never text or audio)."""

    def audio_received(self, seconds: float) -> None: ...
    def window_closed(self, window: Window, *, to_send: bool) -> None: ...
    def window_delivered(self, outcome: Outcome, latency: float | None) -> None: ...
    def pending_changed(self, delta_seconds: float) -> None: ...


class NoObserver:
    def audio_received(self, seconds: float) -> None:
        pass

    def window_closed(self, window: Window, *, to_send: bool) -> None:
        pass

    def window_delivered(self, outcome: Outcome, latency: float | None) -> None:
        pass

    def pending_changed(self, delta_seconds: float) -> None:
        pass
