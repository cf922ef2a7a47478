"""Test helpers: start a gateway on loopback and talk to it like a client would."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.auth.tokens import mint
from gateway.runtime.gateway import Gateway
from gateway.settings import load_settings
from gateway.simulated.whisper import FakeWhisper
from gateway.web.app import create_app
from gateway.web.keys import GATEWAY
from gateway.web.server import GatewayRunner

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
#: Scale every test timeout (slow machines set TEST_TIMEOUT_SCALE=3).
TIMEOUT_SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))


def t(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


def token(school: str = "s-1", group: str = "g-1", **kwargs: Any) -> str:
    return mint(SECRET, school_id=school, group_id=group, **kwargs)


@dataclass
class GatewayServer:
    runner: web.AppRunner
    app: web.Application
    port: int
    fake: FakeWhisper

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/listen"

    @property
    def state(self) -> Gateway:
        return self.app[GATEWAY]

    async def stop(self) -> None:
        await self.runner.cleanup()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """A small aiohttp app on loopback for the test's duration; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def start_gateway(env: dict[str, Any], fake: FakeWhisper, **app_kwargs: Any) -> GatewayServer:
    settings = load_settings({k: str(v) for k, v in env.items()})
    app = create_app(settings, **app_kwargs)
    runner = GatewayRunner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return GatewayServer(runner, app, port, fake)


@dataclass
class Stream:
    """A classroom client over a real WebSocket."""

    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=t(timeout))
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r}")
        message: dict[str, Any] = json.loads(msg.data)
        self.messages.append(message)
        return message

    async def send_audio(
        self, pcm: bytes, frame_seconds: float = 0.1, rate: int = 16000, pace: float = 0.0
    ) -> None:
        step = 2 * round(frame_seconds * rate)
        for i in range(0, len(pcm), step):
            await self.ws.send_bytes(pcm[i : i + step])
            if pace:
                await asyncio.sleep(pace)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def collect(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read until the server closes; return every message received so far."""
        async with asyncio.timeout(t(timeout)):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.messages.append(json.loads(msg.data))
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        return self.messages

    async def finish(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """``CloseStream``, then read until the server closes; every message received."""
        await self.send_json({"type": "CloseStream"})
        return await self.collect(timeout)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def connect(
    server: GatewayServer,
    jwt: str | None = None,
    *,
    via: str = "subprotocol",
    query: dict[str, str] | list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> Stream:
    """``query`` as a list of pairs repeats a parameter (``keyterm``); ``url``: the listen
    endpoint through something else (a proxy) instead of the server's own."""
    session = aiohttp.ClientSession()
    params: list[tuple[str, str]] = list(query.items() if isinstance(query, dict) else query or [])
    hdrs = dict(headers or {})
    protocols: tuple[str, ...] = ()
    if jwt is not None:
        if via == "subprotocol":
            protocols = ("token", jwt)
        elif via == "header":
            hdrs["Authorization"] = f"Bearer {jwt}"
        else:
            params.append(("access_token", jwt))
    ws = await session.ws_connect(
        url or server.ws_url,
        protocols=protocols,
        params=params,
        headers=hdrs,
        autoclose=False,
        max_msg_size=0,
    )
    return Stream(session, ws)


async def open_stream(server: GatewayServer, jwt: str | None = None, **kwargs: Any) -> Stream:
    """Connect and read the first message (``Begin``, or the refusal), kept in ``messages``."""
    stream = await connect(server, jwt, **kwargs)
    await stream.next()
    return stream


def assert_tiling(transcripts: list[dict[str, Any]], total_seconds: float) -> None:
    """Windows are contiguous from 0 to the total audio, seq 0.. without gaps."""
    assert [m["seq"] for m in transcripts] == list(range(len(transcripts)))
    position = 0.0
    for m in transcripts:
        assert abs(m["start"] - position) < 1e-6, (m, position)
        assert m["end"] > m["start"]
        position = m["end"]
    assert abs(position - total_seconds) < 1e-6, (position, total_seconds)


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (server-side bookkeeping after a close)."""
    deadline = asyncio.get_running_loop().time() + t(timeout)
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def stream_and_close(server: GatewayServer, pcm: bytes, **connect_kwargs: Any) -> Stream:
    """Connect, stream ``pcm``, CloseStream, read to the end, and wait for server bookkeeping."""
    stream = await open_stream(server, connect_kwargs.pop("jwt", None) or token(), **connect_kwargs)
    await stream.send_audio(pcm)
    await stream.finish()
    await stream.close()
    await eventually(lambda: len(server.state.registry) == 0)
    return stream


def write_policy(path: Any, **changes: Any) -> str:
    """A policy file: the dev policy with top-level ``changes``; returns its path."""
    from pathlib import Path

    base = json.loads(Path("config/budget-policy.dev.json").read_text())
    base.update(changes)
    target = Path(path)
    target.write_text(json.dumps(base))
    return str(target)


async def http_json(
    method: str, url: str, jwt: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {jwt}"} if jwt else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


class GatewayProcess:
    """A gateway in its own process (``python -m gateway serve``), its JSON log parsed."""

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

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), t(30))
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()


def gateway_env(fake: FakeWhisper, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a gateway process on loopback against ``fake``."""
    return {
        **os.environ,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.url,  # type: ignore[attr-defined]
        "AUTH_JWT_SECRET": SECRET,
        "DATA_DIR": str(data_dir),
        "GATEWAY_PORT": "0",
        "STT_WINDOW_SECONDS": "1",
        "LOG_FORMAT": "json",
        "INTERIM_PROVIDER": "off",
        # Admission answers the machine's own lag (a shared test machine's, here): the
        # admission tests and the capacity harness's overload step turn it on.
        "ADMISSION_LAG_MS": "0",
        **overrides,
    }


async def spawn_gateway(
    fake: FakeWhisper, data_dir: Path, *, cwd: Path | None = None, **overrides: str
) -> GatewayProcess:
    return await gateway_process(gateway_env(fake, data_dir, **overrides), cwd=cwd)


async def gateway_process(env: dict[str, str], *, cwd: Path | None = None) -> GatewayProcess:
    """``python -m gateway serve`` in ``env`` (its log on stderr, parsed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    return GatewayProcess(proc)
