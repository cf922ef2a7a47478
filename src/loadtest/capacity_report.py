"""The capacity report: each speaking step's CPU per window, and the docs-ready table."""

from __future__ import annotations

import argparse
import os
from typing import Any


def per_window(rows: list[dict[str, Any]]) -> None:
    """Add each speaking row's gateway CPU per window: its CPU less what the same frames
    cost silent (the frame path), over the windows transcribed; and the ratio to one bare
    POST of the same window measured in the same step."""
    by = {(r["server"], r["streams"]): r for r in rows}
    for r in rows:
        silent = by.get(("gateway-silent", r["streams"]))
        if r["server"] != "gateway" or silent is None or not r["windows_ok"]:
            continue
        frame_path = silent["cpu_seconds_per_1000_frames"] / 1000 * r["frames"]
        r["cpu_ms_per_window"] = round((r["cpu_seconds"] - frame_path) / r["windows_ok"] * 1000, 3)
        post = by.get(("bare-post", r["streams"]))
        if post and post["cpu_ms_per_post"]:
            r["window_ratio_to_post"] = round(r["cpu_ms_per_window"] / post["cpu_ms_per_post"], 2)


#: The admitted streams' p99 may be this much over the process's own at its lightest step.
LATENCY_MARGIN_MS = 250.0
#: A refused stream hears so within this long of connecting.
REFUSED_WITHIN_MS = 2000
#: Streams served to the end under overload, against those served when offered exactly
#: what the process serves.
GOODPUT_SHARE = 0.9


def serves(steps: list[dict[str, Any]]) -> tuple[int, float]:
    """What the process serves, from steps run with admission off: the most streams of a
    step with nothing dropped and a p99 within :data:`LATENCY_MARGIN_MS` of the lightest
    step's; and that bound (0 streams when no speaking step)."""
    speaking = [
        r
        for r in steps
        if r["server"] == "gateway" and (r["added_latency_ms"] or {}).get("p99") is not None
    ]
    if not speaking:
        return 0, 0.0
    lightest = min(speaking, key=lambda r: r["streams"])
    bound = lightest["added_latency_ms"]["p99"] + LATENCY_MARGIN_MS
    served = [
        r["streams"]
        for r in speaking
        if not r["windows_dropped"] and not r["errors"] and r["added_latency_ms"]["p99"] <= bound
    ]
    return max(served, default=0), bound


def overload_summary(
    steps: list[dict[str, Any]], overload: dict[str, Any], at_capacity: dict[str, Any] | None
) -> dict[str, Any]:
    """The overload step judged against the steps before it (admission off: what the process
    serves, :func:`serves`) and against ``at_capacity`` (exactly that many streams offered
    the same way, admission on): whether it kept its admitted streams within the bound,
    refused the rest in time, and still served at least :data:`GOODPUT_SHARE` of what it
    serves when offered exactly its capacity (goodput; also shown against the capacity)."""
    capacity, bound = serves(steps)
    if not capacity:
        return {}
    p99 = (overload["added_latency_ms"] or {}).get("p99")
    refused_ms = overload["refused_after_ms_max"]
    served_at_capacity = at_capacity["held"] if at_capacity else capacity
    checks = {
        "no_window_dropped": overload["windows_dropped"] == 0,
        "latency_within_bound": p99 is not None and p99 <= bound,
        "refused_in_time": refused_ms is None or refused_ms <= REFUSED_WITHIN_MS,
        "saturated_while_refusing": not overload["refused"]
        or overload["signals"].get("saturated_share", 0) > 0,
        "goodput": served_at_capacity > 0
        and overload["held"] >= GOODPUT_SHARE * served_at_capacity,
    }
    return {
        "capacity": capacity,
        "served_at_capacity": served_at_capacity,
        "latency_bound_ms": round(bound, 1),
        "goodput": round(overload["held"] / served_at_capacity, 2) if served_at_capacity else None,
        "share_of_capacity": round(overload["held"] / capacity, 2),
        "checks": checks,
        "met": all(checks.values()),
    }


def _overload_lines(rows: list[dict[str, Any]]) -> list[str]:
    found = [r for r in rows if r.get("overload")]
    if not found:
        return []
    r, o = found[-1], found[-1]["overload"]
    missed = [name for name, ok in o["checks"].items() if not ok]
    return [
        "",
        f"Overload: {r['streams']} offered, {r['admitted']} admitted, {r['refused']} refused "
        f"(each within {r['refused_after_ms_max'] or 0} ms), {r['held']} served to the end; "
        f"the process serves {o['capacity']} (steps above, admission off) and served "
        f"{o['served_at_capacity']} of them offered exactly that (admission on): goodput "
        f"{(o['goodput'] or 0) * 100:.0f} % ({o['share_of_capacity'] * 100:.0f} % of the "
        f"capacity); admitted: {r['windows_dropped']} windows dropped, "
        f"added latency {_latency(r['added_latency_ms'])} (bound {o['latency_bound_ms']:.0f} "
        f"ms); " + ("all targets met." if o["met"] else f"missed: {', '.join(missed)}."),
    ]


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Steps of {args.step_seconds:g} s, 16 kHz mono in 100 ms frames, window "
        f"{args.window_seconds:g} s, simulated upstream at {args.upstream_latency_ms:g} ms, "
        f"{args.loaders} loader processes, on {os.cpu_count()} cores.",
        "",
        "| streams | server | held | errors | dropped windows | CPU s / 1k frames | ratio | "
        "RSS / stream | added latency p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["streams"]: r for r in rows if r["server"] == "sink"}
    for r in rows:
        if r["server"] == "bare-post":
            continue
        ratio = ""
        if r["server"] != "sink" and r["streams"] in base:
            b = base[r["streams"]]["cpu_seconds_per_1000_frames"]
            ratio = f"{r['cpu_seconds_per_1000_frames'] / b:.2f}×" if b else "∞"
        added = _latency(r["added_latency_ms"])
        lines.append(
            f"| {r['streams']} | {r['server']} | {r['held']} | {r['errors']} | "
            f"{r.get('windows_dropped', 0)} | {r['cpu_seconds_per_1000_frames']:.3f} | {ratio} | "
            f"{r['rss_per_stream_kib']:.0f} KiB | {added} |"
        )
    lines += _live_words(rows, args)
    lines += _overload_lines(rows)
    posts = {r["streams"]: r for r in rows if r["server"] == "bare-post"}
    speaking = [r for r in rows if "cpu_ms_per_window" in r and r["streams"] in posts]
    if speaking:
        lines += [
            "",
            "| streams | gateway CPU / window | one bare aiohttp POST of the window | ratio |",
            "|---|---|---|---|",
        ]
        for r in speaking:
            post = posts[r["streams"]]["cpu_ms_per_post"]
            lines.append(
                f"| {r['streams']} | {r['cpu_ms_per_window']:.2f} ms | {post:.2f} ms | "
                f"{r.get('window_ratio_to_post', 0):.2f}× |"
            )
    return "\n".join(lines) + "\n"


def _latency(lat: dict[str, Any] | None) -> str:
    return "-" if not lat or lat["p50"] is None else f"{lat['p50']:.0f} / {lat['p99']:.0f} ms"


def _live_words(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Per step: the interims each stream got per second, and the finals' added latency
    without and with interims."""
    plain = {r["streams"]: r for r in rows if r["server"] == "gateway"}
    live = [r for r in rows if r["server"] == "gateway-interims" and r["streams"] in plain]
    if not live:
        return []
    out = [
        "",
        f"| streams | interims ({args.interims}) / stream / s | finals' added latency p50 / p99, "
        "without | with interims |",
        "|---|---|---|---|",
    ]
    for r in live:
        rate = r["interims"] / max(1, r["streams"]) / args.step_seconds
        cells = []
        for row in (plain[r["streams"]], r):
            lat = row["added_latency_ms"]
            cells.append(
                "-" if not lat or lat["p50"] is None else f"{lat['p50']:.0f} / {lat['p99']:.0f} ms"
            )
        out.append(f"| {r['streams']} | {rate:.2f} | {cells[0]} | {cells[1]} |")
    return out
