"""Shared fixtures: a loopback simulated Whisper, loopback gateways, stream clients.

Every test runs under a non-UTC local timezone: aiobreaker 1.2 mixes local and
UTC clocks, and the gateway must not care.
"""

from __future__ import annotations

import os
import time

os.environ["TZ"] = "America/Chicago"
time.tzset()

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from gateway.observability.logging import configure_logging  # noqa: E402
from gateway.simulated.whisper import FakeWhisper, start  # noqa: E402
from tests.support.helpers import SECRET, GatewayServer, start_gateway  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

configure_logging("warning", "json")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on loopback that the test may kill and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fake_whisper() -> AsyncIterator[FakeWhisper]:
    fake = FakeWhisper()
    runner, url = await start(fake)
    fake.url = url  # type: ignore[attr-defined]
    yield fake
    await runner.cleanup()


GatewayFactory = Callable[..., Awaitable[GatewayServer]]


@pytest.fixture
async def make_gateway(fake_whisper: FakeWhisper, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[GatewayServer] = []

    async def factory(
        *, app_kwargs: dict[str, Any] | None = None, **overrides: Any
    ) -> GatewayServer:
        env: dict[str, Any] = {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": fake_whisper.url,  # type: ignore[attr-defined]
            "AUTH_JWT_SECRET": SECRET,
            "DATA_DIR": str(tmp_path / f"data{len(started)}"),
            "STT_WINDOW_SECONDS": 1.0,
            "SHUTDOWN_GRACE_SECONDS": 10.0,
            "BREAKER_RESET_SECONDS": 0.5,
            "INTERIM_PROVIDER": "off",  # the interim tests turn it on
            # The test's own client shares the loop: its lag is not the gateway's alone.
            "ADMISSION_LAG_MS": 0,  # the admission tests turn it on
            **overrides,
        }
        server = await start_gateway(env, fake_whisper, **(app_kwargs or {}))
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        await server.stop()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> GatewayServer:
    return await make_gateway()
