"""Two replicas behind a real nginx; one is stopped (SIGTERM) in the middle of a classroom.

Every group whose replica drained gets its ``Termination`` (1001), reconnects through
nginx and streams the rest of its audio on the other replica: every second of every
group is accounted for once, over its sessions, and the school's ledger holds exactly
what the ``Termination`` messages say was billed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.simulated.whisper import FakeWhisper
from loadtest.classroom import ClassroomConfig, run_classroom
from loadtest.report import Thresholds
from tests.support.budget import teacher
from tests.support.helpers import SECRET, GatewayProcess, http_json, spawn_gateway
from tests.support.redis_server import RedisServer, free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow


def nginx_conf(prefix: Path, port: int, upstreams: list[int]) -> Path:
    servers = "".join(
        f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;\n" for p in upstreams
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream gateways {{
{servers}  }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Sec-WebSocket-Protocol $http_sec_websocket_protocol;
      proxy_read_timeout 3600s;
      proxy_next_upstream error timeout http_502;
    }}
  }}
}}
"""
    )
    return conf


@pytest.fixture
def nginx_binary() -> str:
    debian = Path("/usr/sbin/nginx")  # not on every PATH
    return str(debian) if debian.exists() else require_tool("nginx", "nginx")


@pytest.fixture
def balancer_prefix(tmp_path: Path) -> Path:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    return prefix


async def _balanced(
    nginx_binary: str, balancer_prefix: Path, ports: list[int]
) -> tuple[asyncio.subprocess.Process, int]:
    """nginx on a free port in front of ``ports``, answering health checks."""
    port = free_port()
    conf = nginx_conf(balancer_prefix, port, ports)
    nginx = await asyncio.create_subprocess_exec(
        *(nginx_binary, "-p", str(balancer_prefix), "-c", str(conf), "-g", "daemon off;"),
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(100):
        status, _ = await _status(f"http://127.0.0.1:{port}/api/v1/health")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    return nginx, port


@asynccontextmanager
async def _two_replicas_behind_nginx(
    env: dict[str, str], fake: FakeWhisper, nginx_binary: str, prefix: Path, tmp_path: Path
) -> AsyncIterator[tuple[list[GatewayProcess], list[int], int]]:
    """Two gateway processes with ``env``, and nginx in front of them: the replicas, their
    ports and the balancer's; all stopped after."""
    replicas = [await spawn_gateway(fake, tmp_path / f"gw{i}", **env) for i in range(2)]
    nginx: asyncio.subprocess.Process | None = None
    try:
        ports = [await r.listening() for r in replicas]
        nginx, port = await _balanced(nginx_binary, prefix, ports)
        yield replicas, ports, port
    finally:
        if nginx is not None:
            nginx.terminate()
            await asyncio.wait_for(nginx.wait(), 10)
        for replica in replicas:
            await replica.stop()


async def _school_usage(port: int) -> dict[str, object]:
    """The school s-1's budget usage, as replica ``port`` reads the ledger."""
    status, usage = await http_json(
        "GET", f"http://127.0.0.1:{port}/api/v1/schools/s-1/budget/usage", teacher("s-1")
    )
    assert status == 200, usage
    return dict(usage)


async def test_a_classroom_whose_connections_drop_resumes_on_either_replica(
    redis_server: RedisServer,
    fake_whisper: FakeWhisper,
    nginx_binary: str,
    balancer_prefix: Path,
    tmp_path: Path,
) -> None:
    """25 groups, each connection cut 3 times at random moments (a proxy per group, in
    front of nginx, in front of two replicas): a resume lands on either replica, and every
    group is one session, every window once, billed once."""
    env = {"REDIS_URL": redis_server.url}
    async with _two_replicas_behind_nginx(
        env, fake_whisper, nginx_binary, balancer_prefix, tmp_path
    ) as (replicas, ports, port):
        config = ClassroomConfig(
            url=f"ws://127.0.0.1:{port}/api/v1/listen",
            groups=25,
            duration=12.0,
            secret=SECRET,
            progress="off",
            drops=3,
            seed=7,
            thresholds=Thresholds(max_p95_ms=60_000, max_error_ratio=0.0),
        )
        report = await run_classroom(config)
        assert report["verification_problems"] == [], report["verification_problems"][:5]
        assert report["verdict"] == "pass", report["breaches"]
        assert report["connect"]["ok"] == 25
        taken_over = sum(
            1 for r in replicas for line in r.lines if line.get("event") == "session.taken_over"
        )
        assert taken_over > 0  # some resumes landed on the other replica
        usage = await _school_usage(ports[1])
        assert usage["spent_usd"] == pytest.approx(report["cost_usd"], abs=1e-9)
        assert report["cost_usd"] > 0


async def test_a_replica_stopped_mid_classroom_loses_no_second_and_bills_once(
    redis_server: RedisServer,
    fake_whisper: FakeWhisper,
    nginx_binary: str,
    balancer_prefix: Path,
    tmp_path: Path,
) -> None:
    env = {"REDIS_URL": redis_server.url, "SHUTDOWN_GRACE_SECONDS": "10"}
    async with _two_replicas_behind_nginx(
        env, fake_whisper, nginx_binary, balancer_prefix, tmp_path
    ) as (replicas, ports, port):
        config = ClassroomConfig(
            url=f"ws://127.0.0.1:{port}/api/v1/listen",
            groups=50,
            duration=12.0,
            secret=SECRET,
            progress="off",
            thresholds=Thresholds(max_p95_ms=60_000, max_error_ratio=0.0),
        )
        classroom = asyncio.create_task(run_classroom(config))
        await asyncio.sleep(5.0)
        replicas[0].proc.terminate()  # SIGTERM: drain, then exit
        report = await classroom
        assert report["verification_problems"] == [], report["verification_problems"][:5]
        assert report["verdict"] == "pass", report["breaches"]
        assert report["restarts"] >= 10  # the drained replica's groups came back
        assert report["connect"]["ok"] == 50
        assert await asyncio.wait_for(replicas[0].proc.wait(), 30) == 0
        usage = await _school_usage(ports[1])
        assert usage["spent_usd"] == pytest.approx(report["cost_usd"], abs=1e-9)
        assert usage["reserved_usd"] == 0
        assert report["cost_usd"] > 0


async def _status(url: str) -> tuple[int, object]:
    try:
        return await http_json("GET", url)
    except Exception:
        return 0, None
