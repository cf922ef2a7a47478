"""A session's observations (:class:`~gateway.stream.observer.Observer`), into Prometheus."""

from __future__ import annotations

from gateway.observability.metrics import Metrics
from gateway.stream.audio_window import Window
from gateway.stream.outcome import Outcome


class SessionMetrics:
    """The core's observations, into Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def audio_received(self, seconds: float) -> None:
        self._m.audio_received.inc(seconds)

    def window_closed(self, window: Window, *, to_send: bool) -> None:
        m = self._m
        m.window_length.observe(window.duration)
        m.audio_speech.inc(window.voiced_seconds)
        if not to_send:
            return
        if not window.speech:
            m.audio_not_sent.labels(reason="silence").inc(window.duration)
        elif window.sent_seconds < window.duration:
            m.audio_not_sent.labels(reason="pause").inc(window.duration - window.sent_seconds)

    def window_delivered(self, outcome: Outcome, latency: float | None) -> None:
        m = self._m
        if latency is not None:  # None: the client left before it could be sent
            m.transcript_latency.observe(latency)
        m.windows.labels(status=outcome.status).inc()
        if outcome.status == "dropped":
            m.windows_dropped.labels(reason=outcome.reason or "UNKNOWN").inc()

    def pending_changed(self, delta_seconds: float) -> None:
        self._m.pending_audio.inc(delta_seconds)
