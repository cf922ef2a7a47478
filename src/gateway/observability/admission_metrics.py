"""The metrics of admission and saturation (observability.md), registered with the rest."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Why a new stream was refused.
REFUSAL_REASONS = ("saturated", "max_sessions", "draining", "school_cap")
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def register(r: CollectorRegistry) -> tuple[Histogram, Counter, Gauge]:
    lag = Histogram(
        "stt_event_loop_lag_seconds",
        "How late the event loop ran a periodic timer: the saturation signal.",
        buckets=_LAG_BUCKETS,
        registry=r,
    )
    refused = Counter(
        "stt_admission_refused",
        "New streams refused (OVERLOADED, close 1013) by reason.",
        ["reason"],
        registry=r,
    )
    for reason in REFUSAL_REASONS:
        refused.labels(reason=reason)
    saturated = Gauge(
        "stt_saturated",
        "1 while the process is saturated and admission is closed.",
        registry=r,
    )
    return lag, refused, saturated
