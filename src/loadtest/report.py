"""Aggregate group results into a report and a verdict (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from loadtest.verify import GroupResult, problems


@dataclass(frozen=True)
class Thresholds:
    max_p95_ms: float = 15000.0
    max_error_ratio: float = 0.01


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def build_report(
    results: list[GroupResult], thresholds: Thresholds, *, check_text: bool, duration: float
) -> dict[str, Any]:
    transcripts = [m for r in results for m in r.of_type("Transcript")]
    statuses = Counter(m.get("status") for m in transcripts)
    drops = Counter(m.get("reason") for m in transcripts if m.get("status") == "dropped")
    latencies = [float(m["latency_ms"]) for m in transcripts if m.get("status") == "ok"]
    errors = Counter(m.get("code") for r in results for m in r.of_type("Error"))
    errors.update(r.error for r in results if r.error and not r.of_type("Error"))
    closes = Counter(str(r.close_code) for r in results)
    connected = sum(r.connected for r in results)
    connect_ms = [r.connect_ms for r in results if r.connect_ms is not None]
    found = [p for r in results for p in problems(r, check_text=check_text)]
    windows = len(transcripts)
    failed = statuses.get("dropped", 0) + (len(results) - connected)
    error_ratio = failed / max(1, windows + len(results) - connected)
    p95 = percentile(latencies, 0.95)
    breaches = _breaches(thresholds, len(results), connected, p95, error_ratio, len(found))
    return {
        "groups": len({r.group_id for r in results}),
        "sessions": len(results),
        "duration_seconds": duration,
        "connect": {
            "ok": connected,
            "failed": len(results) - connected,
            "p50_ms": percentile(connect_ms, 0.5),
            "p95_ms": percentile(connect_ms, 0.95),
        },
        "latency_ms": {
            "p50": percentile(latencies, 0.5),
            "p95": p95,
            "p99": percentile(latencies, 0.99),
            "max": max(latencies, default=None),
        },
        "windows": {
            "total": windows,
            **{k: statuses.get(k, 0) for k in ("ok", "silence", "dropped")},
            "dropped_by_reason": dict(drops),
        },
        "errors_by_code": dict(errors),
        "close_codes": dict(closes),
        "restarts": sum(r.reconnects for r in results),
        "cost_usd": round(
            sum(float(t.get("cost_usd", 0)) for r in results for t in r.of_type("Termination")), 6
        ),
        "error_ratio": round(error_ratio, 6),
        "verification_problems": found,
        "thresholds": {
            "max_p95_ms": thresholds.max_p95_ms,
            "max_error_ratio": thresholds.max_error_ratio,
        },
        "verdict": "fail" if breaches else "pass",
        "breaches": breaches,
    }


def _breaches(
    thresholds: Thresholds,
    sessions: int,
    connected: int,
    p95: float | None,
    error_ratio: float,
    problems_found: int,
) -> list[str]:
    """What failed the run, each in one line."""
    breaches = []
    if connected < sessions:
        breaches.append(f"{sessions - connected} of {sessions} groups did not connect")
    if p95 is not None and p95 > thresholds.max_p95_ms:
        breaches.append(f"transcript latency p95 {p95:.0f} ms > {thresholds.max_p95_ms:.0f} ms")
    if error_ratio > thresholds.max_error_ratio:
        breaches.append(f"error ratio {error_ratio:.4f} > {thresholds.max_error_ratio}")
    if problems_found:
        breaches.append(f"{problems_found} verification problem(s)")
    return breaches


def render(report: dict[str, Any]) -> str:
    lat = report["latency_ms"]
    win = report["windows"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    lines = [
        f"classroom: {report['groups']} groups ({report['sessions']} sessions), "
        f"{report['duration_seconds']:.0f} s of audio each",
        f"  connected        {report['connect']['ok']}/{report['sessions']} "
        f"(p50 {ms(report['connect']['p50_ms'])})",
        f"  latency          p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}",
        f"  windows          {win['total']}: ok {win['ok']}, silence {win['silence']}, "
        f"dropped {win['dropped']} {win['dropped_by_reason'] or ''}".rstrip(),
        f"  errors           {report['errors_by_code'] or 'none'}",
        f"  close codes      {report['close_codes']}",
        f"  restarts         {report['restarts']}",
        f"  cost             ${report['cost_usd']:.6f}",
        f"  error ratio      {report['error_ratio']:.4f}",
    ]
    for problem in report["verification_problems"][:20]:
        lines.append(f"  ! {problem}")
    if report.get("interrupted"):
        lines.append(
            f"verdict: INTERRUPTED after {report['wall_seconds']:.0f} s (a partial report)"
        )
    else:
        lines.append(
            f"verdict: {report['verdict'].upper()}"
            + (": " + "; ".join(report["breaches"]) if report["breaches"] else "")
        )
    return "\n".join(lines)
