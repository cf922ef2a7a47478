"""The capacity benchmark: a bare WebSocket sink and the gateway under the same load.

For each step (a number of concurrent real-time 16 kHz streams in 100 ms
frames) both servers run in their own process, measured from outside:

- streams held: connected and never errored;
- server CPU seconds per 1,000 audio frames (``/proc/<pid>/stat``);
- RSS per stream: (RSS under load − idle RSS) / streams;
- for the gateway, its own added latency: ``Transcript.latency_ms`` minus the
  simulated upstream's fixed latency.

Each step also runs the gateway on *silent* audio (``gateway-silent``): every
window is skipped by voice-activity detection, so no upstream or ledger call
is made and what remains is the cost of the frame path alone.

The ratio gateway / baseline of CPU per frame is the headline. Load comes from
separate loader processes (``python -m loadtest.capacity loader``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.auth.tokens import mint
from loadtest.report import percentile

FRAME_BYTES = 3200  # 100 ms of 16 kHz s16le
SECRET = "capacity-benchmark-secret-0123456789abcdef"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


# -- the loader (runs in its own process) ------------------------------------------

COUNTS = ("connected", "held", "frames", "late_frames", "dropped")


def empty_stats() -> dict[str, Any]:
    """What a loader reports: counts, error kinds and transcript latencies."""
    return {**dict.fromkeys(COUNTS, 0), "errors": [], "latency_ms": []}


async def _stream(
    url: str, jwt: str, seconds: float, start_delay: float, stats: dict[str, Any], pcm: bytes
) -> None:
    from websockets.asyncio.client import connect

    await asyncio.sleep(start_delay)
    try:
        async with connect(
            url,
            subprotocols=["token", jwt],  # type: ignore[list-item]
            open_timeout=30,
            max_size=None,
            compression=None,
            ping_interval=None,
        ) as ws:
            begin = json.loads(await ws.recv())
            if begin.get("type") != "Begin":
                stats["errors"].append(str(begin.get("code")))
                return
            stats["connected"] += 1

            async def read() -> None:
                async for raw in ws:
                    m = json.loads(raw)
                    if m.get("type") == "Transcript" and m.get("status") == "ok":
                        stats["latency_ms"].append(m["latency_ms"])
                    elif m.get("type") == "Transcript" and m.get("status") == "dropped":
                        stats["dropped"] += 1
                    elif m.get("type") == "Error":
                        stats["errors"].append(m.get("code"))

            reader = asyncio.create_task(read())
            frames = round(seconds * 10)
            next_at = time.monotonic()
            for i in range(frames):
                offset = (i * FRAME_BYTES) % (len(pcm) - FRAME_BYTES)
                await ws.send(pcm[offset : offset + FRAME_BYTES])
                stats["frames"] += 1
                next_at += 0.1
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats["late_frames"] += 1
            await ws.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(reader, 60)
            stats["held"] += 1
    except Exception as exc:
        stats["errors"].append(type(exc).__name__)


async def _loader(
    url: str, streams: int, seconds: float, first: int, ramp: float, silent: bool
) -> None:
    sample_rate = 16000
    t = np.arange(sample_rate * 3) / sample_rate
    stats = empty_stats()
    tasks = []
    for i in range(streams):
        index = first + i
        amplitude = 0.0 if silent else 0.3
        tone = (np.sin(2 * np.pi * (200 + index % 500) * t) * amplitude * 32767).astype("<i2")
        jwt = mint(
            SECRET,
            school_id=f"bench-{index}",
            group_id="g",
            role="student",
            ttl_seconds=int(seconds) + 600,
        )
        tasks.append(_stream(url, jwt, seconds, ramp * i / max(1, streams), stats, tone.tobytes()))
    await asyncio.gather(*tasks)
    print(json.dumps(stats), flush=True)


# -- the orchestrator ----------------------------------------------------------------


class Server:
    def __init__(
        self, kind: str, workdir: Path, upstream_latency_ms: float, window_seconds: float
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.latency_ms = upstream_latency_ms
        self.window_seconds = window_seconds

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/listen"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.kind == "sink":
            self.pid = self._spawn(
                [sys.executable, "-m", "loadtest.sink", "--port", str(self.port)], env
            )
        else:
            fake_port = free_port()
            self._spawn(
                [
                    sys.executable,
                    "-m",
                    "loadtest",
                    "fake-whisper",
                    "--port",
                    str(fake_port),
                    "--latency-ms",
                    str(self.latency_ms),
                ],
                env,
            )
            env.update(
                {
                    "OPENAI_API_KEY": "bench",
                    "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
                    "AUTH_JWT_SECRET": SECRET,
                    "GATEWAY_PORT": str(self.port),
                    "DATA_DIR": str(self.workdir / "gateway-data"),
                    "LOG_LEVEL": "warning",
                    "STT_WINDOW_SECONDS": str(self.window_seconds),
                    "STT_MAX_CONCURRENCY": "1024",
                    "MAX_SESSIONS": "10000",
                    "IDLE_TIMEOUT_SECONDS": "120",
                }
            )
            self.pid = self._spawn([sys.executable, "-m", "gateway", "serve"], env)
        self._wait_ready()

    def _spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start a child; its output goes to a log file beside its data (shown if it fails)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"{len(self.procs)}-{argv[2].replace('.', '-')}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(log_path)
        return proc.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for proc, log_path in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.kind} did not start: {' '.join(map(str, argv_of(proc)))} "
                        f"exited with {proc.returncode}:\n{_tail(log_path)}"
                    )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.5)
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"{self.kind} did not start within 60 s:\n"
            + "\n".join(_tail(log_path) for log_path in self.logs)
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def argv_of(proc: subprocess.Popen[bytes]) -> list[object]:
    args = proc.args
    return list(args) if isinstance(args, list | tuple) else [args]


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines a child wrote."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (no output)"


def run_step(kind: str, streams: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One server under ``streams`` streams. ``gateway-silent`` streams silence: the frame
    path only (VAD marks every window silent: no upstream call, no ledger call)."""
    silent = kind == "gateway-silent"
    server = Server(
        "gateway" if silent else kind,
        workdir / f"{kind}-{streams}",
        args.upstream_latency_ms,
        args.window_seconds,
    )
    server.start()
    try:
        idle_rss = rss_bytes(server.pid)
        cpu_before = cpu_seconds(server.pid)
        loaders = max(1, min(args.loaders, streams))
        per = [streams // loaders + (1 if i < streams % loaders else 0) for i in range(loaders)]
        ramp = min(5.0, args.step_seconds / 4)
        procs = []
        first = 0
        for count in per:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "loadtest.capacity",
                        "loader",
                        "--url",
                        server.url,
                        "--streams",
                        str(count),
                        "--seconds",
                        str(args.step_seconds),
                        "--first",
                        str(first),
                        "--ramp",
                        str(ramp),
                        *(["--silent"] if silent else []),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            )
            first += count
        time.sleep(ramp + args.step_seconds * 0.6)
        loaded_rss = rss_bytes(server.pid)
        outputs = [p.communicate(timeout=args.step_seconds * 4 + 120)[0] for p in procs]
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.stop()
    stats = empty_stats()
    for out in outputs:
        part = json.loads(out.decode().strip().splitlines()[-1])
        for key in COUNTS:
            stats[key] += part[key]
        stats["errors"] += part["errors"]
        stats["latency_ms"] += part["latency_ms"]
    added = [max(0.0, v - args.upstream_latency_ms) for v in stats["latency_ms"]]
    return {
        "server": kind,
        "streams": streams,
        "held": stats["held"],
        "errors": len(stats["errors"]),
        "error_kinds": sorted(set(map(str, stats["errors"]))),
        "frames": stats["frames"],
        "late_frames": stats["late_frames"],
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_1000_frames": round(cpu / max(1, stats["frames"]) * 1000, 4),
        "rss_idle_mb": round(idle_rss / 2**20, 1),
        "rss_per_stream_kib": round((loaded_rss - idle_rss) / max(1, streams) / 1024, 1),
        "windows_ok": len(stats["latency_ms"]),
        "windows_dropped": stats["dropped"],
        "added_latency_ms": None
        if kind != "gateway"
        else {
            "p50": percentile(added, 0.5),
            "p95": percentile(added, 0.95),
            "p99": percentile(added, 0.99),
        },
    }


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
        ratio = ""
        if r["server"] != "sink" and r["streams"] in base:
            b = base[r["streams"]]["cpu_seconds_per_1000_frames"]
            ratio = f"{r['cpu_seconds_per_1000_frames'] / b:.2f}×" if b else "∞"
        lat = r["added_latency_ms"]
        added = "-" if not lat or lat["p50"] is None else f"{lat['p50']:.0f} / {lat['p99']:.0f} ms"
        lines.append(
            f"| {r['streams']} | {r['server']} | {r['held']} | {r['errors']} | "
            f"{r.get('windows_dropped', 0)} | {r['cpu_seconds_per_1000_frames']:.3f} | {ratio} | "
            f"{r['rss_per_stream_kib']:.0f} KiB | {added} |"
        )
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stt-capacity-") as tmp:
        for streams in steps:
            for kind in ("sink", "gateway-silent", "gateway"):
                row = run_step(kind, streams, args, Path(tmp))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    table = markdown(rows, args)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m loadtest.capacity")
    sub = parser.add_subparsers(dest="verb", required=True)
    loader = sub.add_parser("loader")
    loader.add_argument("--url", required=True)
    loader.add_argument("--streams", type=int, required=True)
    loader.add_argument("--seconds", type=float, required=True)
    loader.add_argument("--first", type=int, default=0)
    loader.add_argument("--ramp", type=float, default=2.0)
    loader.add_argument("--silent", action="store_true")
    ns = parser.parse_args()
    asyncio.run(_loader(ns.url, ns.streams, ns.seconds, ns.first, ns.ramp, ns.silent))
