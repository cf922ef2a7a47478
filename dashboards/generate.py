"""Generate the Grafana dashboards in ``dashboards/grafana/`` (grafana-foundation-sdk, Grafana 11).

Run ``python dashboards/generate.py`` after changing a panel; the generated
JSON is committed and ``tests/test_dashboards.py`` fails when it is stale.
Every query uses metrics the gateway exports (or the recording rules in
``dashboards/prometheus/rules/``); a test checks them against a live
``/metrics`` and a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "grafana"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="stt-prometheus")
#: The SLO target for window availability (ok + silence over all windows).
SLO_TARGET = 0.995
RATE = "$__rate_interval"


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    return query


def ts(title: str, unit: str, *queries: prometheus.Dataquery, w: int = 12,
       description: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(w).height(8)
    if description:
        panel = panel.description(description)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def st(title: str, unit: str, query: prometheus.Dataquery, w: int = 6,
       description: str = "") -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE).span(w).height(4)
    if description:
        panel = panel.description(description)
    return panel.with_target(query)


def board(uid: str, title: str, description: str) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description)
            .tags(["stt-gateway"]).refresh("30s").time("now-1h", "now").timezone("browser")
            .editable())


def overview() -> dash.Dashboard:
    http = 'sum(rate(http_requests_total{route!="/api/v1/listen"}[' + RATE + "]))"
    quantile = ('histogram_quantile({q}, sum by (le) (rate('
                'http_request_duration_seconds_bucket[' + RATE + '])))')
    return (board("stt-overview", "stt-gateway · Overview",
                  "HTTP traffic, errors and latency; streaming sessions and restarts.")
            .with_row(dash.Row("At a glance"))
            .with_panel(st("Active sessions", "short", q("sum(stt_sessions_active)")))
            .with_panel(st("HTTP requests/s", "reqps", q(http)))
            .with_panel(st("HTTP 5xx ratio (5m)", "percentunit",
                           q("stt:http_5xx:ratio_rate5m")))
            .with_panel(st("Stream restarts (1h)", "short",
                           q("sum(increase(stt_stream_restarts_total[1h]))")))
            .with_row(dash.Row("HTTP"))
            .with_panel(ts("HTTP request rate by route", "reqps", q(
                "sum by (route, status) (rate(http_requests_total[" + RATE + "]))",
                "{{route}} {{status}}")))
            .with_panel(ts("HTTP 5xx ratio", "percentunit", q(
                'sum(rate(http_requests_total{status=~"5.."}[' + RATE + "])) / "
                "clamp_min(sum(rate(http_requests_total[" + RATE + "])), 1e-9)", "5xx")))
            .with_panel(ts("HTTP latency p50 / p95 / p99", "s",
                           q(quantile.format(q=0.5), "p50", "A"),
                           q(quantile.format(q=0.95), "p95", "B"),
                           q(quantile.format(q=0.99), "p99", "C"), w=24))
            .with_row(dash.Row("Sessions"))
            .with_panel(ts("Active sessions", "short", q("sum(stt_sessions_active)", "active")))
            .with_panel(ts("Connection attempts by outcome", "ops", q(
                "sum by (outcome) (rate(stt_sessions_total[" + RATE + "]))", "{{outcome}}")))
            .with_panel(ts("Sessions ended by reason", "ops", q(
                "sum by (reason) (rate(stt_sessions_ended_total[" + RATE + "]))", "{{reason}}")))
            .with_panel(ts("Stream restarts", "ops", q(
                "sum(rate(stt_stream_restarts_total[" + RATE + "]))", "restarts"))))


def streaming() -> dash.Dashboard:
    return (board("stt-streaming", "stt-gateway · Streaming",
                  "Audio in, windows out: buffer depth, transcript latency, window outcomes.")
            .with_panel(ts("Pending audio (buffer depth)", "s", q(
                "sum(stt_pending_audio_seconds)", "pending"),
                description="Audio closed into windows and waiting for its transcript."))
            .with_panel(ts("Audio received", "short", q(
                "sum(rate(stt_audio_received_seconds_total[" + RATE + "]))",
                "audio seconds / second")))
            .with_panel(heatmap.Panel().title("Transcript latency histogram")
                        .datasource(DATASOURCE).span(12).height(8).with_target(
                q("sum by (le) (increase(stt_transcript_latency_seconds_bucket[" + RATE + "]))",
                  "{{le}}").format("heatmap")))
            .with_panel(ts("Transcript latency p50 / p95 / p99", "s", *[
                q("histogram_quantile(" + str(p) + ", sum by (le) (rate("
                  "stt_transcript_latency_seconds_bucket[" + RATE + "])))", f"p{int(p * 100)}",
                  ref) for p, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))]))
            .with_panel(ts("Windows by status", "ops", q(
                "sum by (status) (rate(stt_windows_total[" + RATE + "]))", "{{status}}")))
            .with_panel(ts("Dropped windows by reason", "ops", q(
                "sum by (reason) (rate(stt_windows_dropped_total[" + RATE + "]))",
                "{{reason}}")))
            .with_panel(ts("Effective window length", "s", q(
                "max(stt_window_seconds)", "window"),
                description="Grows while Whisper answers 429 often, shrinks back after."))
            .with_panel(ts("Where windows end (length p10 / p50 / p90)", "s", *[
                q("histogram_quantile(" + str(p) + ", sum by (le) (rate("
                  "stt_window_length_seconds_bucket[" + RATE + "])))", f"p{int(p * 100)}",
                  ref) for p, ref in ((0.1, "A"), (0.5, "B"), (0.9, "C"))],
                description="Windows end in pauses: around the target, a little past it "
                            "to reach a pause, never past STT_WINDOW_MAX_SECONDS."))
            .with_panel(ts("Speech share of the audio", "percentunit", q(
                "sum(rate(stt_audio_speech_seconds_total[" + RATE + "])) / "
                "clamp_min(sum(rate(stt_audio_received_seconds_total[" + RATE + "])), 1e-9)",
                "voiced / received"),
                description="Seconds the voice-activity detector found voiced."))
            .with_panel(ts("Segments suppressed (words Whisper invented)", "ops", q(
                "sum by (reason) (rate(stt_segments_suppressed_total[" + RATE + "]))",
                "{{reason}}"),
                description="Segments Whisper itself marked as non-speech or looping, "
                            "dropped from transcripts."))
            .with_panel(ts("Live words (interims) by outcome", "ops", q(
                "sum by (outcome) (rate(stt_interims_total[" + RATE + "]))", "{{outcome}}"),
                description="Interim decodes of open windows: sent, skipped_busy (the "
                            "decoder had no room: interims are given up first), failed."))
            .with_panel(ts("Interim decode p50 / p95", "s", *[
                q("histogram_quantile(" + str(p) + ", sum by (le) (rate("
                  "stt_interim_duration_seconds_bucket[" + RATE + "])))", f"p{int(p * 100)}",
                  ref) for p, ref in ((0.5, "A"), (0.95, "B"))])))


def upstream() -> dash.Dashboard:
    outcome = "sum by (outcome) (rate(stt_upstream_requests_total[" + RATE + "]))"
    return (board("stt-upstream", "stt-gateway · Upstream (Whisper)",
                  "Whisper latency, rate limits, errors, the circuit breaker and models.")
            .with_panel(st("Circuit open", "bool",
                           q('max(stt_upstream_circuit_state{state="open"})'), w=8))
            .with_panel(st("429 ratio (5m)", "percentunit", q(
                'sum(rate(stt_upstream_requests_total{outcome="rate_limited"}[5m])) / '
                "clamp_min(sum(rate(stt_upstream_requests_total[5m])), 1e-9)"), w=8))
            .with_panel(st("Held calls (1h)", "short", q(
                "sum(increase(stt_upstream_calls_not_permitted_total[1h]))"), w=8))
            .with_panel(ts("Whisper latency p50 / p95 / p99 by model", "s", *[
                q("histogram_quantile(" + str(p) + ", sum by (le, model) (rate("
                  "stt_upstream_request_duration_seconds_bucket[" + RATE + "])))",
                  f"p{int(p * 100)} {{{{model}}}}", ref)
                for p, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))]))
            .with_panel(ts("Requests by outcome", "reqps", q(outcome, "{{outcome}}")))
            .with_panel(ts("429s (rate limited)", "reqps", q(
                'sum(rate(stt_upstream_requests_total{outcome="rate_limited"}[' + RATE + "]))",
                "429")))
            .with_panel(ts("Circuit state", "short", q(
                "max by (state) (stt_upstream_circuit_state)", "{{state}}")))
            .with_panel(ts("Circuit transitions and held calls", "ops",
                           q("sum by (to) (rate(stt_upstream_circuit_transitions_total["
                             + RATE + "]))", "to {{to}}", "A"),
                           q("sum(rate(stt_upstream_calls_not_permitted_total[" + RATE + "]))",
                             "held", "B")))
            .with_panel(ts("Model distribution", "reqps", q(
                "sum by (model) (rate(stt_upstream_requests_total[" + RATE + "]))",
                "{{model}}"))))


def finops() -> dash.Dashboard:
    projected = ('sum(stt_budget_spent_usd{scope="global"}) + '
                 "sum(rate(stt_cost_usd_total[1h])) * (86400 - time() % 86400)")
    return (board("stt-finops", "stt-gateway · FinOps",
                  "Spend by model, top schools, budget utilisation and projected spend.")
            .with_panel(st("Spent today (UTC)", "currencyUSD",
                           q('sum(stt_budget_spent_usd{scope="global"})')))
            .with_panel(st("Projected end-of-day spend", "currencyUSD", q(projected),
                           description="Spent today plus the last hour's rate until UTC "
                                       "midnight."))
            .with_panel(st("Global budget used", "percentunit",
                           q('max(stt_budget_used_ratio{scope="global"})')))
            .with_panel(st("Overspend (24h)", "currencyUSD",
                           q("sum(increase(stt_budget_overspend_usd_total[24h]))")))
            .with_panel(ts("Spend by model (USD/hour)", "currencyUSD", q(
                "sum by (model) (rate(stt_cost_usd_total[" + RATE + "])) * 3600", "{{model}}")))
            .with_panel(ts("Billed audio by model", "s", q(
                "sum by (model) (rate(stt_audio_billed_seconds_total[" + RATE + "]))",
                "{{model}}")))
            .with_panel(st("Billed / streamed (1h)", "percentunit", q(
                "sum(increase(stt_audio_billed_seconds_total[1h])) / "
                "clamp_min(sum(increase(stt_audio_received_seconds_total[1h])), 1e-9)"),
                description="Seconds paid for over seconds streamed: silence is not sent."))
            .with_panel(st("Billed / speech (1h)", "percentunit", q(
                "sum(increase(stt_audio_billed_seconds_total[1h])) / "
                "clamp_min(sum(increase(stt_audio_speech_seconds_total[1h])), 1e-9)"),
                description="Seconds paid for over seconds of voiced audio."))
            .with_panel(st("Speech share (1h)", "percentunit", q(
                "sum(increase(stt_audio_speech_seconds_total[1h])) / "
                "clamp_min(sum(increase(stt_audio_received_seconds_total[1h])), 1e-9)")))
            .with_panel(st("Audio not sent (1h)", "s", q(
                "sum(increase(stt_audio_not_sent_seconds_total[1h]))"),
                description="Silent windows and the middles of long pauses: never billed."))
            .with_panel(ts("Streamed, billed and not sent", "s",
                           q("sum(rate(stt_audio_received_seconds_total[" + RATE + "]))",
                             "streamed", "A"),
                           q("sum(rate(stt_audio_billed_seconds_total[" + RATE + "]))",
                             "billed", "B"),
                           q("sum by (reason) (rate(stt_audio_not_sent_seconds_total["
                             + RATE + "]))", "not sent: {{reason}}", "C")))
            .with_panel(table.Panel().title("Top schools by spend today").datasource(DATASOURCE)
                        .span(12).height(8).with_target(q(
                            "topk(20, stt_school_budget_spent_usd)", "{{school_id}}")
                            .instant().format("table")))
            .with_panel(ts("Budget utilisation", "percentunit",
                           q("stt_budget_used_ratio", "{{scope}}", "A"),
                           q("topk(10, stt_school_budget_used_ratio)", "{{school_id}}", "B")))
            .with_panel(ts("Reservations by outcome", "ops", q(
                "sum by (outcome) (rate(stt_budget_reservations_total[" + RATE + "]))",
                "{{outcome}}")))
            .with_panel(ts("Budget alerts fired", "short", q(
                "sum by (threshold) (increase(stt_budget_alerts_total[1h]))",
                "{{threshold}} %"))))


def slo() -> dash.Dashboard:
    budget = 1 - SLO_TARGET
    return (board("stt-slo", "stt-gateway · SLO",
                  f"Window availability (ok + silence over all windows), target "
                  f"{SLO_TARGET:.1%}, and the error budget over 30 days.")
            .with_panel(st("Availability (30d)", "percentunit",
                           q("stt:window_availability:ratio_rate30d"), w=8))
            .with_panel(st("Error budget remaining (30d)", "percentunit", q(
                f"1 - (1 - stt:window_availability:ratio_rate30d) / {budget:g}"), w=8))
            .with_panel(st("Burn rate (1h)", "short", q(
                f"(1 - stt:window_availability:ratio_rate1h) / {budget:g}"), w=8))
            .with_panel(ts("Window availability", "percentunit",
                           q("stt:window_availability:ratio_rate5m", "5m", "A"),
                           q("stt:window_availability:ratio_rate1h", "1h", "B"),
                           q(f"vector({SLO_TARGET})", "target", "C"), w=24))
            .with_panel(ts("Burn rate by window", "short", *[
                q(f"(1 - stt:window_availability:ratio_rate{w}) / {budget:g}", w, ref)
                for w, ref in (("5m", "A"), ("1h", "B"), ("6h", "C"), ("1d", "D"))], w=24)))


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "overview": overview, "streaming": streaming, "upstream": upstream, "finops": finops,
    "slo": slo,
}


def render(name: str) -> str:
    built: Any = DASHBOARDS[name]().build()
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        (OUT / f"{name}.json").write_text(render(name))
        print(f"wrote {OUT / f'{name}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
