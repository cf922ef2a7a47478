"""A real Prometheus (Debian's package) scrapes a gateway while classrooms stream.

Every dashboard query must parse and run; the core panels must return data;
and a failing upstream must make SttUpstreamCircuitOpen go pending in
Prometheus's own alerts API.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import (
    GatewayServer,
    eventually,
    http_json,
    open_stream,
    t,
    token,
)
from tests.support.monitoring import RULES, grafana_to_promql, panel_queries
from tests.support.redis_server import free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

CORE_PANELS = {
    ("overview", "HTTP request rate by route"),
    ("overview", "Active sessions"),
    ("streaming", "Windows by status"),
    ("streaming", "Audio received"),
    ("streaming", "Transcript latency p50 / p95 / p99"),
    ("upstream", "Requests by outcome"),
    ("upstream", "Whisper latency p50 / p95 / p99 by model"),
    ("upstream", "Circuit state"),
    ("finops", "Spend by model (USD/hour)"),
    ("finops", "Spent today (UTC)"),
    ("finops", "Top schools by spend today"),
    ("slo", "Window availability"),
}


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.proc = proc

    async def api(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/{path}", params=params) as r,
        ):
            return await r.json()


@pytest.fixture
async def prometheus_for(tmp_path: Path) -> AsyncIterator[Any]:
    binary = require_tool("prometheus", "prometheus")
    started: list[subprocess.Popen[bytes]] = []

    async def start(target_port: int) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in sorted(RULES.glob("*.rules.yml"))],
            "scrape_configs": [
                {
                    "job_name": "stt-gateway",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        proc = subprocess.Popen(  # noqa: ASYNC220 - spawning does not block
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        prom = Prometheus(f"http://127.0.0.1:{port}", proc)
        for _ in range(int(t(30) / 0.2)):
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{prom.url}/-/ready") as r,
                ):
                    if r.status == 200:
                        return prom
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


async def _classroom(server: GatewayServer, group: str, freq: int) -> None:
    stream = await open_stream(server, token("s-1", group))
    await stream.send_audio(tone(freq, 3.0), pace=0.05)
    await stream.send_json({"type": "CloseStream"})
    await stream.collect(timeout=30)
    await stream.close()


async def _has_data(prom: Prometheus, expr: str) -> bool:
    answer = await prom.api("query", query=grafana_to_promql(expr))
    return answer["status"] == "success" and bool(answer["data"]["result"])


async def test_dashboards_and_alerts_against_real_prometheus(
    make_gateway: GatewayFactory, prometheus_for: Any
) -> None:
    server = await make_gateway(BREAKER_FAIL_MAX=2, BREAKER_RESET_SECONDS=120, STT_MAX_RETRIES=1)
    prom: Prometheus = await prometheus_for(server.port)
    teacher = token("s-1", "staff", role="teacher")
    await asyncio.gather(*(_classroom(server, f"g-{i}", 300 + 50 * i) for i in range(5)))
    for _ in range(3):
        await http_json("GET", f"{server.http}/api/v1/schools/s-1/budget/usage", teacher)
        await http_json("GET", f"{server.http}/api/v1/health")

    # Every query of every panel parses and evaluates; the core ones return data.
    queries = panel_queries()
    assert len(queries) > 30
    deadline = asyncio.get_running_loop().time() + t(40)
    missing: set[tuple[str, str]] = set(CORE_PANELS)
    while True:
        errors = []
        for board, title, expr in queries:
            answer = await prom.api("query", query=grafana_to_promql(expr))
            if answer["status"] != "success":
                errors.append((board, title, answer.get("error")))
            elif answer["data"]["result"]:
                missing.discard((board, title))
        assert not errors, errors
        if not missing or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    assert not missing, f"core panels without data: {sorted(missing)}"

    # A failing upstream opens the circuit; Prometheus sees SttUpstreamCircuitOpen.
    server.fake.behaviour.mode = "500"
    stream = await open_stream(server, token("s-1", "faulty"))
    await stream.send_audio(tone(440, 2.0))
    assert server.state.service is not None
    await eventually(lambda: server.state.service.guard.state == "open", timeout=15)

    async def alert_state() -> str | None:
        alerts = (await prom.api("alerts"))["data"]["alerts"]
        states = [
            a["state"] for a in alerts if a["labels"]["alertname"] == "SttUpstreamCircuitOpen"
        ]
        return states[0] if states else None

    state = None
    for _ in range(int(t(30))):
        state = await alert_state()
        if state in ("pending", "firing"):
            break
        await asyncio.sleep(1)
    assert state in ("pending", "firing")
    rules = (await prom.api("rules"))["data"]["groups"]
    assert {g["name"] for g in rules} == {"stt-recording", "stt-gateway", "stt-slo"}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"
    ]
    server.fake.behaviour.mode = "normal"
    await stream.close()
