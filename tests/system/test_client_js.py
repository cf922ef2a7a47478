"""The JavaScript client (clients/js) under Node's test runner: its own unit tests, and its
stream against this real gateway through a proxy that cuts connections (the proxy and the
checks are in clients/js/test; here the gateway, the tokens and the ledger)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.support.audio import silence, tone
from tests.support.budget import usage
from tests.support.helpers import t, token
from tests.support.tools import require_tool

CLIENT = Path(__file__).parents[2] / "clients" / "js"
WINDOWS = 8
#: Eight windows of speech, each ending in a pause (1 s windows).
SPEECH = (tone(440, 0.8) + silence(0.3)) * WINDOWS


async def test_the_javascript_client_resumes_against_a_real_gateway(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    node = require_tool("node", "nodejs")
    version = await asyncio.create_subprocess_exec(
        node, "--version", stdout=asyncio.subprocess.PIPE
    )
    major = int((await version.communicate())[0].decode().strip().lstrip("v").split(".")[0])
    assert major >= 20, f"the client's tests need Node.js 20 or newer (its WebSocket), not {major}"
    server = await make_gateway(RESUME_SECONDS=2)
    audio, report = tmp_path / "speech.pcm", tmp_path / "billed.json"
    audio.write_bytes(SPEECH)
    tokens = {"cuts": token("s-js1", "g-1"), "gone": token("s-js2", "g-1")}
    env = {
        **os.environ,
        "STT_GATEWAY": f"ws://127.0.0.1:{server.port}",
        "STT_TOKENS": json.dumps(tokens),
        "STT_AUDIO": str(audio),
        "STT_REPORT": str(report),
    }
    tests = sorted(str(path) for path in (CLIENT / "test").glob("*.test.js"))
    process = await asyncio.create_subprocess_exec(
        node, "--experimental-websocket", "--test", *tests,
        cwd=CLIENT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), t(240))
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "# skipped 0" in text and "# fail 0" in text, text[-2000:]
    billed = {entry["test"]: entry for entry in json.loads(report.read_text())}
    # Cut twice and resumed: the school paid exactly what its one Termination says.
    cuts = await usage(server, "s-js1")
    assert cuts["spent_usd"] == pytest.approx(billed["cuts"]["cost_usd"])
    # Every window transcribed (a cut closes the open window early: there may be more).
    assert billed["cuts"]["ok_windows"] == billed["cuts"]["windows"] >= WINDOWS
    # The session that expired while away was billed for what it settled, the new one on top.
    gone = await usage(server, "s-js2")
    assert gone["spent_usd"] >= billed["gone"]["cost_usd"] > 0
