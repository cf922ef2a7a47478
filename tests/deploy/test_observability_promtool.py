"""``/metrics`` passes ``promtool check metrics`` (Debian package prometheus)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.audio import tone
from tests.support.helpers import GatewayServer, stream_and_close
from tests.support.tools import require_tool


async def test_metrics_pass_promtool(gateway: GatewayServer) -> None:
    promtool = require_tool("promtool", "prometheus")
    await stream_and_close(gateway, tone(440, 1.0))
    async with aiohttp.ClientSession() as session, session.get(gateway.http + "/metrics") as r:
        body = await r.read()
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(body), 60)
    assert proc.returncode == 0, (out + err).decode()
