"""``/metrics`` passes ``promtool check metrics`` (Debian package prometheus)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.audio import tone
from tests.helpers import GatewayServer, connect, eventually, token
from tests.tools import require_tool


async def test_metrics_pass_promtool(gateway: GatewayServer) -> None:
    promtool = require_tool("promtool", "prometheus")
    stream = await connect(gateway, token())
    await stream.next()
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "CloseStream"})
    await stream.collect()
    await stream.close()
    await eventually(lambda: len(gateway.state.registry) == 0)
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
