"""The servers a capacity step measures, each in its own process, read from ``/proc``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from loadtest.capacity_loader import SECRET

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


class Server:
    def __init__(
        self,
        kind: str,
        workdir: Path,
        upstream_latency_ms: float,
        window_seconds: float,
        interims: str = "off",
        cpus: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``interims``: the gateway's INTERIM_PROVIDER (``openai``: the simulated Whisper);
        ``cpus``: the CPUs the gateway (and the sink) may run on (``taskset -c``);
        ``env``: more of the gateway's environment (over the harness's own)."""
        self.kind = kind
        self.interims = interims
        self.port = free_port()
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.latency_ms = upstream_latency_ms
        self.window_seconds = window_seconds
        self.pinned = ["taskset", "-c", cpus] if cpus else []
        self.env = env or {}

    @property
    def url(self) -> str:
        if self.kind == "bare-post":
            return f"http://127.0.0.1:{self.port}/v1/audio/transcriptions"
        return f"ws://127.0.0.1:{self.port}/api/v1/listen"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.kind == "sink":
            self.pid = self._spawn(
                [*self.pinned, sys.executable, "-m", "loadtest.sink", "--port", str(self.port)], env
            )
        elif self.kind == "bare-post":
            self.start_fake(env, port=self.port)
            self.pid = self.procs[-1].pid
        else:
            fake_port = self.start_fake(env)
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
                    "INTERIM_PROVIDER": self.interims,
                    "INTERIM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
                    **self.env,
                }
            )
            self.pid = self._spawn([*self.pinned, sys.executable, "-m", "gateway", "serve"], env)
        self._wait_ready()

    def start_fake(self, env: dict[str, str] | None = None, port: int | None = None) -> int:
        """The simulated Whisper at the step's latency, in its own process; its port."""
        fake_port = port or free_port()
        argv = [sys.executable, "-m", "loadtest", "fake-whisper", "--port", str(fake_port)]
        env = env or {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._spawn([*argv, "--latency-ms", str(self.latency_ms)], env)
        return fake_port

    def _spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start a child; its output goes to a log file beside its data (shown if it fails)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        name = argv[len(self.pinned) + 2] if argv[0] == "taskset" else argv[2]
        log_path = self.workdir / f"{len(self.procs)}-{name.replace('.', '-')}.log"
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
