"""Real Redis Cluster and Sentinel deployments on loopback, from Debian's redis-server.

A cluster is three primaries made into one with ``redis-cli --cluster create``;
a Sentinel deployment is a primary, a replica and one sentinel watching them.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.redis_server import free_port
from tests.support.tools import require_tool


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 50000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def _server(binary: str, directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    argv += ["--save", "", "--appendonly", "yes", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(check: object, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def redis_cluster(directory: Path, primaries: int = 3) -> Iterator[list[int]]:
    """A Redis Cluster of ``primaries`` primaries; yields their ports."""
    server = require_tool("redis-server", "redis-server")
    cli = require_tool("redis-cli", "redis-tools")
    ports = [cluster_port() for _ in range(primaries)]
    procs = [
        _server(server, directory / str(port), port, "--cluster-enabled", "yes") for port in ports
    ]
    try:
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).ping(), f"redis-server on {port}")
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait(
                lambda p=port: redis.Redis(port=p).cluster("info")["cluster_state"] == "ok",
                "the cluster to be ok",
            )
        yield ports
    finally:
        _stop(procs)


class SentinelDeployment:
    """A primary, a replica and one sentinel (quorum 1, failover after 1 s)."""

    MASTER = "stt-ledger"

    def __init__(self, directory: Path) -> None:
        self.binary = require_tool("redis-server", "redis-server")
        self.dir = directory
        self.primary_port, self.replica_port, self.sentinel_port = (free_port() for _ in range(3))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.sentinel_port}/0"

    def start(self) -> None:
        primary, replica = self.primary_port, self.replica_port
        self.procs[primary] = _server(self.binary, self.dir / "primary", primary)
        _wait(lambda: redis.Redis(port=primary).ping(), "the primary")
        self.procs[replica] = _server(
            self.binary, self.dir / "replica", replica, "--replicaof", "127.0.0.1", str(primary)
        )
        _wait(
            lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up",
            "the replica to follow the primary",
        )
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {primary} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 5000\n"
        )
        self.procs[self.sentinel_port] = subprocess.Popen(
            [self.binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(
            lambda: (
                redis.Redis(port=self.sentinel_port).sentinel_master(self.MASTER)["num-slaves"] >= 1
            ),
            "the sentinel to see the replica",
        )

    def current_primary(self) -> int:
        addr = redis.Redis(port=self.sentinel_port).sentinel_get_master_addr_by_name(self.MASTER)
        return int(addr[1])

    def kill_primary(self) -> int:
        """Kill the primary (no shutdown save); return its port."""
        port = self.current_primary()
        self.procs[port].kill()
        self.procs[port].wait(10)
        return port

    def wait_for_failover(self, old: int, seconds: float = 30.0) -> int:
        _wait(lambda: self.current_primary() != old, "the sentinel's failover", seconds)
        return self.current_primary()

    def stop(self) -> None:
        _stop(list(self.procs.values()))
