"""``/metrics`` passes ``promtool check metrics`` (Debian package prometheus)."""

from __future__ import annotations

import subprocess

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
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
