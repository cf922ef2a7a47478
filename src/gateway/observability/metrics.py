"""Prometheus metrics with the names and labels of observability.md.

Each application gets its own :class:`Metrics` (and registry), so several
gateways can live in one test process. Labels are bounded: never a session
id, group id or free text.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from gateway import __version__
from gateway.observability import admission_metrics as admission

CIRCUIT_STATES = ("closed", "open", "half_open")
SESSION_OUTCOMES = (
    "accepted",
    "rejected_auth",
    "rejected_origin",
    "rejected_capacity",
    "rejected_config",
)
END_REASONS = (
    "client_close",
    "idle_timeout",
    "budget_exhausted",
    "server_shutdown",
    "replaced",
    "disconnected",
    "error",
)
WINDOW_STATUSES = ("ok", "silence", "dropped")
#: Why audio was not sent upstream: a window without speech, a long pause's middle.
NOT_SENT_REASONS = ("silence", "pause")
SUPPRESSION_REASONS = ("no_speech", "looping")
INTERIM_OUTCOMES = ("sent", "skipped_busy", "failed")

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120)
_UPSTREAM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every gateway metric, registered in one registry."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call, unused-ignore]  # no *_created series
        r = self.registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self._stream_metrics(r)
        self._window_metrics(r)
        self._upstream_metrics(r)
        self._budget_metrics(r)
        self._http_metrics(r)
        self.event_loop_lag, self.admission_refused, self.saturated = admission.register(r)
        self._prime()

    def _stream_metrics(self, r: CollectorRegistry) -> None:
        """Sessions, audio received, windows and transcript latency."""
        self.build_info = Gauge("stt_build_info", "Gateway build.", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)

        self.sessions_active = Gauge("stt_sessions_active", "Open streaming sessions.", registry=r)
        self.sessions = Counter(
            "stt_sessions", "Streaming connection attempts by outcome.", ["outcome"], registry=r
        )
        self.sessions_ended = Counter(
            "stt_sessions_ended", "Streaming sessions ended, by reason.", ["reason"], registry=r
        )
        self.sessions_detached = Gauge(
            "stt_sessions_detached", "Sessions waiting for their client to resume.", registry=r
        )
        self.session_resumes = Counter(
            "stt_session_resumes", "Resume attempts, by outcome.", ["outcome"], registry=r
        )
        self.stream_restarts = Counter(
            "stt_stream_restarts",
            "Groups that reconnected within 5 minutes of their previous stream.",
            registry=r,
        )
        self.audio_received = Counter(
            "stt_audio_received_seconds", "Seconds of audio received from clients.", registry=r
        )
        self.pending_audio = Gauge(
            "stt_pending_audio_seconds",
            "Audio waiting for a transcript, all sessions (buffer depth).",
            registry=r,
        )
        self.window_seconds = Gauge(
            "stt_window_seconds", "Current effective window length.", registry=r
        )
        self.windows = Counter(
            "stt_windows", "Windows delivered, by status.", ["status"], registry=r
        )
        self.windows_dropped = Counter(
            "stt_windows_dropped", "Windows dropped, by reason.", ["reason"], registry=r
        )
        self.transcript_latency = Histogram(
            "stt_transcript_latency_seconds",
            "Window closed → Transcript sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def _window_metrics(self, r: CollectorRegistry) -> None:
        """Speech, audio not sent, window lengths, suppressed segments."""
        self.audio_speech = Counter(
            "stt_audio_speech_seconds",
            "Seconds of received audio the voice-activity detector found voiced.",
            registry=r,
        )
        self.audio_not_sent = Counter(
            "stt_audio_not_sent_seconds",
            "Seconds of received audio never sent upstream (nor billed): windows without "
            "speech, and the middles of long pauses.",
            ["reason"],
            registry=r,
        )
        self.window_length = Histogram(
            "stt_window_length_seconds",
            "Length of each closed window (where the pauses fell).",
            buckets=(0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30),
            registry=r,
        )
        self.interims = Counter(
            "stt_interims",
            "Interim decodes of open windows, by outcome (sent, skipped_busy, failed).",
            ["outcome"],
            registry=r,
        )
        self.interim_duration = Histogram(
            "stt_interim_duration_seconds",
            "One interim decode.",
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.segments_suppressed = Counter(
            "stt_segments_suppressed",
            "Transcript segments dropped because Whisper marked them non-speech or looping.",
            ["reason"],
            registry=r,
        )

    def _upstream_metrics(self, r: CollectorRegistry) -> None:
        """Whisper: requests, durations, the circuit, the provider, credentials."""
        self.upstream_requests = Counter(
            "stt_upstream_requests",
            "Upstream transcription requests by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "stt_upstream_request_duration_seconds",
            "Upstream request duration.",
            ["model"],
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.circuit_state = Gauge(
            "stt_upstream_circuit_state", "Circuit breaker state (one-hot).", ["state"], registry=r
        )
        self.circuit_transitions = Counter(
            "stt_upstream_circuit_transitions", "Circuit breaker transitions.", ["to"], registry=r
        )
        self.upstream_info = Gauge(
            "stt_upstream_info",
            "The speech-to-text provider in use (openai, local, simulated) and its model.",
            ["provider", "model"],
            registry=r,
        )
        self.upstream_auth_failures = Counter(
            "stt_upstream_auth_failures",
            "Upstream answers refusing the gateway's credentials (401/403).",
            registry=r,
        )
        self.calls_not_permitted = Counter(
            "stt_upstream_calls_not_permitted",
            "Windows held because the circuit was open.",
            registry=r,
        )

    def _budget_metrics(self, r: CollectorRegistry) -> None:
        """Spend, reservations, alerts, the journal, per-scope and per-school gauges."""
        self.audio_billed = Counter(
            "stt_audio_billed_seconds",
            "Audio seconds billed by the upstream.",
            ["model"],
            registry=r,
        )
        self.cost_usd = Counter("stt_cost_usd", "Upstream cost in USD.", ["model"], registry=r)
        self.budget_reservations = Counter(
            "stt_budget_reservations", "Budget reservations by outcome.", ["outcome"], registry=r
        )
        self.budget_overspend = Counter(
            "stt_budget_overspend_usd", "Billed cost above what was reserved.", registry=r
        )
        self.budget_alerts = Counter(
            "stt_budget_alerts", "Budget alerts fired.", ["threshold"], registry=r
        )

        self.budget_used_ratio = Gauge(
            "stt_budget_used_ratio",
            "Share of the daily limit spent (0–1), global and district.",
            ["scope"],
            registry=r,
        )
        self.budget_spent_usd = Gauge(
            "stt_budget_spent_usd",
            "USD spent today, global and district scopes.",
            ["scope"],
            registry=r,
        )
        self.school_used_ratio = Gauge(
            "stt_school_budget_used_ratio",
            "Share of a school's daily limit spent (top schools).",
            ["school_id"],
            registry=r,
        )
        self.school_spent_usd = Gauge(
            "stt_school_budget_spent_usd",
            "USD a school spent today (top schools).",
            ["school_id"],
            registry=r,
        )

        self.budget_commits_journaled = Gauge(
            "stt_budget_commits_journaled",
            "Charges kept in the local journal because the ledger could not take them yet.",
            registry=r,
        )
        self.ledger_writable = Gauge(
            "stt_ledger_writable",
            "1 when the ledger's Redis took the last probe write, 0 when it refused it "
            "(out of memory, read-only) or could not be reached.",
            registry=r,
        )

    def _http_metrics(self, r: CollectorRegistry) -> None:
        """The HTTP API."""
        self.http_requests = Counter(
            "http_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )

    def _prime(self) -> None:
        """Create every bounded label value so series exist from the first scrape."""
        for outcome in SESSION_OUTCOMES:
            self.sessions.labels(outcome=outcome)
        for reason in END_REASONS:
            self.sessions_ended.labels(reason=reason)
        for status in WINDOW_STATUSES:
            self.windows.labels(status=status)
        for state in CIRCUIT_STATES:
            self.circuit_state.labels(state=state).set(1 if state == "closed" else 0)
            self.circuit_transitions.labels(to=state)
        for outcome in ("ok", "exceeded", "error", "bypassed"):
            self.budget_reservations.labels(outcome=outcome)
        for reason in NOT_SENT_REASONS:
            self.audio_not_sent.labels(reason=reason)
        for reason in SUPPRESSION_REASONS:
            self.segments_suppressed.labels(reason=reason)
        for outcome in INTERIM_OUTCOMES:
            self.interims.labels(outcome=outcome)
        for outcome in ("resumed", "expired", "forbidden"):
            self.session_resumes.labels(outcome=outcome)

    def set_circuit_state(self, state: str) -> None:
        for s in CIRCUIT_STATES:
            self.circuit_state.labels(state=s).set(1 if s == state else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
