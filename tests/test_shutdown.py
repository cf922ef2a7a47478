"""SIGTERM drains a live session in a real gateway process with nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.audio import tone
from tests.helpers import SECRET, GatewayServer, assert_tiling, connect, t, token

pytestmark = pytest.mark.slow


class _Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.port: int | None = None
        self._listening = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            self.lines.append(line)
            if line.get("event") == "gateway.listening":
                self.port = int(line["url"].rsplit(":", 1)[1])
                self._listening.set()

    async def listening(self) -> int:
        await asyncio.wait_for(self._listening.wait(), t(20))
        assert self.port is not None
        return self.port


async def _spawn(fake: FakeWhisper, tmp_path: Path) -> _Process:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.url,  # type: ignore[attr-defined]
        "AUTH_JWT_SECRET": SECRET,
        "DATA_DIR": str(tmp_path),
        "GATEWAY_PORT": "0",
        "STT_WINDOW_SECONDS": "1",
        "SHUTDOWN_GRACE_SECONDS": "20",
        "LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return _Process(proc)


async def test_sigterm_drains_live_session(fake_whisper: FakeWhisper, tmp_path: Path) -> None:
    fake_whisper.behaviour.latency_ms = 1200
    gw = await _spawn(fake_whisper, tmp_path)
    try:
        port = await gw.listening()
        server = GatewayServer(None, None, port, fake_whisper)  # type: ignore[arg-type]
        stream = await connect(server, token())
        await stream.next()
        await stream.send_audio(tone(440, 2.5))
        await asyncio.sleep(0.2)
        gw.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.http}/api/v1/ready") as r,
        ):
            body = await r.json()
            assert r.status == 503 and body["status"] == "not_ready" and body["draining"]
        late = await connect(server, token(group="late"))
        error = await late.next()
        assert error["code"] == "OVERLOADED"
        await late.collect()
        assert late.close_code == 1013
        await late.close()
        messages = await stream.collect(timeout=30)
        transcripts = stream.of_type("Transcript")
        assert_tiling(transcripts, 2.5)
        assert all(m["status"] == "ok" for m in transcripts)
        term = messages[-1]
        assert term["type"] == "Termination" and term["reason"] == "server_shutdown"
        assert term["windows"] == 3
        assert stream.close_code == 1001
        await stream.close()
        assert await asyncio.wait_for(gw.proc.wait(), t(30)) == 0
        events = [line.get("event") for line in gw.lines]
        assert "gateway.draining" in events and "gateway.stopped" in events
    finally:
        if gw.proc.returncode is None:
            gw.proc.kill()
            await gw.proc.wait()
