"""The capacity benchmark: a bare WebSocket sink and the gateway under the same load.

For each step (a number of concurrent real-time 16 kHz streams in 100 ms
frames) each server runs in its own process, measured from outside
(:mod:`loadtest.capacity_servers`) under load from separate loader processes
(:mod:`loadtest.capacity_loader`):

- streams held: connected and never errored;
- server CPU seconds per 1,000 audio frames (``/proc/<pid>/stat``);
- RSS per stream: (RSS under load − idle RSS) / streams;
- for the gateway, its own added latency: ``Transcript.latency_ms`` minus the
  simulated upstream's fixed latency.

Each step also runs the gateway on *silent* audio (``gateway-silent``): every
window is skipped by voice-activity detection, so no upstream or ledger call
is made and what remains is the cost of the frame path alone. And it runs the
per-window baseline (``bare-post``, :mod:`loadtest.capacity_post`): the same
windows POSTed by bare aiohttp to the same simulated Whisper at the rate the
speaking streams make them.

The ratios gateway / baseline — CPU per frame against the sink, CPU per window
against one bare POST — are the headline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtest.capacity_loader import COUNTS, empty_stats
from loadtest.capacity_report import markdown, overload_summary, per_window, serves
from loadtest.capacity_servers import Server, cpu_seconds, rss_bytes
from loadtest.capacity_signals import Signals
from loadtest.report import percentile

KINDS = ("sink", "gateway-silent", "gateway", "bare-post")
#: The server column of the steps run with admission on (``--overload``).
ADMITTED = "gateway-admission"


def run_step(
    kind: str,
    streams: int,
    args: argparse.Namespace,
    workdir: Path,
    ramp: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One server under ``streams`` streams (started over ``ramp`` seconds; ``env``: more of
    the gateway's environment). ``gateway-silent`` streams silence: the frame path only (VAD
    marks every window silent: no upstream call, no ledger call). A gateway's own load
    signals are sampled meanwhile."""
    if kind == "bare-post":
        return run_post_baseline(streams, args, workdir)
    silent = kind == "gateway-silent"
    live = kind == "gateway-interims"
    server = Server(
        "gateway" if silent or live else kind,
        workdir / f"{kind}-{streams}",
        args.upstream_latency_ms,
        args.window_seconds,
        interims=args.interims if live else "off",
        cpus=getattr(args, "cpus", None),
        env=env,
    )
    server.start()
    signals = Signals(server.port, server.pid) if kind != "sink" else None
    try:
        idle_rss = rss_bytes(server.pid)
        cpu_before = cpu_seconds(server.pid)
        ramp = min(5.0, args.step_seconds / 4) if ramp is None else ramp
        if signals is not None:
            signals.start()
        procs = start_loaders(server.url, streams, args, ramp, silent, live)
        time.sleep(ramp + args.step_seconds * 0.6)
        loaded_rss = rss_bytes(server.pid)
        outputs = [p.communicate(timeout=args.step_seconds * 4 + 120)[0] for p in procs]
        cpu = cpu_seconds(server.pid) - cpu_before
        load = signals.stop() if signals is not None else {}
    finally:
        server.stop()
    stats = merge(outputs)
    memory = (idle_rss, loaded_rss)
    return _row(kind, streams, stats, cpu, memory, load, args.upstream_latency_ms)


def _row(
    kind: str,
    streams: int,
    stats: dict[str, Any],
    cpu: float,
    memory: tuple[int, int],
    load: dict[str, Any],
    upstream_latency_ms: float,
) -> dict[str, Any]:
    """One step's line of the report."""
    idle_rss, loaded_rss = memory
    added = [max(0.0, v - upstream_latency_ms) for v in stats["latency_ms"]]
    return {
        "server": kind,
        "streams": streams,
        "held": stats["held"],
        "errors": len(stats["errors"]),
        "error_kinds": sorted(set(map(str, stats["errors"]))),
        "frames": stats["frames"],
        "late_frames": stats["late_frames"],
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_1000_frames": round(cpu / max(1, stats["frames"]) * 1000, 4),
        "rss_idle_mb": round(idle_rss / 2**20, 1),
        "rss_per_stream_kib": round((loaded_rss - idle_rss) / max(1, streams) / 1024, 1),
        "windows_ok": len(stats["latency_ms"]),
        "windows_dropped": stats["dropped"],
        "interims": stats["interims"],
        "admitted": stats["connected"],
        "refused": len(stats["refused_ms"]),
        "refused_after_ms_max": max(stats["refused_ms"], default=None),
        "signals": load,
        "added_latency_ms": None
        if kind not in ("gateway", "gateway-interims")
        else {
            "p50": percentile(added, 0.5),
            "p95": percentile(added, 0.95),
            "p99": percentile(added, 0.99),
        },
    }


def start_loaders(
    url: str,
    streams: int,
    args: argparse.Namespace,
    ramp: float,
    silent: bool,
    interims: bool = False,
) -> list[subprocess.Popen[bytes]]:
    """``args.loaders`` loader processes sharing ``streams`` between them."""
    loaders = max(1, min(args.loaders, streams))
    per = [streams // loaders + (1 if i < streams % loaders else 0) for i in range(loaders)]
    procs = []
    first = 0
    for count in per:
        argv = [sys.executable, "-m", "loadtest.capacity_loader", "--url", url]
        argv += ["--streams", str(count), "--seconds", str(args.step_seconds)]
        argv += ["--first", str(first), "--ramp", str(ramp), *(["--silent"] if silent else [])]
        argv += ["--interims"] if interims else []
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        first += count
    return procs


def merge(outputs: list[bytes]) -> dict[str, Any]:
    """The loaders' reports (each one JSON line) added up."""
    stats = empty_stats()
    for out in outputs:
        part = json.loads(out.decode().strip().splitlines()[-1])
        for key in COUNTS:
            stats[key] += part[key]
        stats["errors"] += part["errors"]
        stats["latency_ms"] += part["latency_ms"]
        stats["refused_ms"] += part.get("refused_ms", [])
    return stats


def run_post_baseline(streams: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Bare aiohttp POSTs of one window each, at the rate ``streams`` speaking streams make
    windows, to the simulated Whisper: the client's CPU per POST."""
    server = Server("bare-post", workdir / f"bare-post-{streams}", args.upstream_latency_ms, 0)
    server.start()
    try:
        argv = [sys.executable, "-m", "loadtest.capacity_post", "--url", server.url]
        argv += ["--rate", f"{streams / args.window_seconds:g}"]
        argv += [
            "--seconds",
            f"{args.step_seconds:g}",
            "--window-seconds",
            f"{args.window_seconds:g}",
        ]
        done = subprocess.run(
            argv, capture_output=True, check=True, timeout=args.step_seconds * 4 + 120
        )
    finally:
        server.stop()
    part = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {
        "server": "bare-post",
        "streams": streams,
        "posts": part["posts"],
        "errors": part["errors"],
        "cpu_seconds": round(part["cpu_seconds"], 3),
        "cpu_ms_per_post": round(part["cpu_seconds"] / max(1, part["posts"]) * 1000, 3),
    }


def main(args: argparse.Namespace) -> int:
    steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stt-capacity-") as tmp:
        kinds: tuple[str, ...] = KINDS if args.interims == "off" else (*KINDS, "gateway-interims")
        if args.servers:
            kinds = tuple(k for k in kinds if k in args.servers.split(","))
        # The steps measure what the process serves with nothing refused (admission off).
        reference = {"ADMISSION_LAG_MS": "0"}
        for streams in steps:
            for kind in kinds:
                rows.append(_step(kind, streams, args, Path(tmp), None, reference))
        if args.overload:
            rows += _overload_steps(rows, args, Path(tmp))
    per_window(rows)
    table = markdown(rows, args)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    return 0


def _step(
    kind: str,
    streams: int,
    args: argparse.Namespace,
    workdir: Path,
    ramp: float | None,
    env: dict[str, str] | None,
) -> dict[str, Any]:
    row = run_step(kind, streams, args, workdir, ramp, env)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _overload_steps(
    steps: list[dict[str, Any]], args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    """With admission as configured, streams ramped as a school morning is: exactly what
    the steps say the process serves, then ``args.overload`` (more than it serves); the
    latter judged against both (:func:`overload_summary`)."""
    capacity, _ = serves(steps)
    offered = [capacity, args.overload] if capacity else [args.overload]
    rows = [_step("gateway", n, args, workdir, args.overload_ramp, None) for n in offered]
    for row in rows:  # not a step: the per-step comparisons (CPU per window, interims) skip it
        row["server"] = ADMITTED
    rows[-1]["overload"] = overload_summary(steps, rows[-1], rows[0] if capacity else None)
    return rows
