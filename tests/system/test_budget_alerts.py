"""Alerts fire exactly once per (school, day, threshold) across gateway processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.auth.tokens import mint
from gateway.simulated.whisper import FakeWhisper
from tests.support.audio import tone
from tests.support.helpers import (
    SECRET,
    GatewayServer,
    eventually,
    http_json,
    open_stream,
    spawn_gateway,
    token,
    write_policy,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow
SCHOOL = "alert-school"


class Receiver:
    """A loopback webhook receiver that fails its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.bodies: list[dict[str, Any]] = []

    async def hook(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return web.Response(status=500)
        self.bodies.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recv = Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/hook", recv.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield recv, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await runner.cleanup()


async def _classroom(server: GatewayServer, group: str) -> list[dict[str, Any]]:
    stream = await open_stream(server, token(SCHOOL, group))
    for _ in range(8):
        if stream.ws.closed:
            break
        try:
            await stream.send_audio(tone(500, 1.0))
        except ConnectionError:
            break
        await asyncio.sleep(0.05)
    messages = await stream.collect(timeout=60)
    await stream.close()
    return messages


async def test_alert_exactly_once_across_two_processes_and_webhook_retried(
    fake_whisper: FakeWhisper,
    redis_server: RedisServer,
    tmp_path: Path,
    receiver: tuple[Receiver, str],
) -> None:
    recv, hook_url = receiver
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={SCHOOL: {"daily_limit_usd": 0.001, "timezone": "UTC"}},
    )
    env = {"REDIS_URL": redis_server.url, "BUDGET_POLICY_PATH": policy}
    procs = [await spawn_gateway(fake_whisper, tmp_path / f"gw{i}", **env) for i in range(2)]
    try:
        servers = [
            GatewayServer(None, None, await p.listening(), fake_whisper)  # type: ignore[arg-type]
            for p in procs
        ]
        admin = mint(SECRET, school_id=SCHOOL, role="school_admin")
        status, _ = await http_json(
            "PUT",
            f"{servers[0].http}/api/v1/schools/{SCHOOL}/budget/alerts",
            admin,
            {"webhook_url": hook_url},
        )
        assert status == 200
        results = await asyncio.gather(*(_classroom(servers[i % 2], f"g-{i}") for i in range(6)))
        budget_messages = [m for r in results for m in r if m["type"] == "Budget"]
        assert {m["threshold"] for m in budget_messages} == {50, 80, 100}
        await eventually(lambda: len(recv.bodies) == 3, timeout=20)
        assert sorted(b["threshold"] for b in recv.bodies) == [50, 80, 100]
        assert recv.attempts == 5  # two failures, retried
        assert all(b["text"].startswith("stt-gateway:") for b in recv.bodies)
        status, alerts = await http_json(
            "GET", f"{servers[1].http}/api/v1/schools/{SCHOOL}/budget/alerts", admin
        )
        assert status == 200
        assert sorted(a["threshold"] for a in alerts["fired"]) == [50, 80, 100]
        assert alerts["webhook_configured"] is True
        fired = [
            line for p in procs for line in p.lines if line.get("event") == "budget.alert_fired"
        ]
        assert sorted(line["threshold"] for line in fired) == [50, 80, 100]
        audits = [(tmp_path / f"gw{i}" / "audit.log").read_text() for i in range(2)]
        assert sum(a.count('"budget.alert_fired"') for a in audits) == 3
        assert all(hook_url not in a for a in audits)
    finally:
        for p in procs:
            await p.stop()
