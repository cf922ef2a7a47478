"""First-run mistakes: a busy port, a killed gateway, two gateways on one data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.helpers import SECRET, eventually, spawn_gateway, t

pytestmark = pytest.mark.slow


def redis_servers_for(data_dir: Path) -> list[int]:
    """PIDs of redis-server processes working in ``data_dir`` (Redis rewrites its command
    line, but it runs in its ``--dir``)."""
    target = str((data_dir / "redis").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if name.startswith("redis-server") and cwd == target:
            found.append(int(entry.name))
    return found


def _env(data_dir: Path, port: int, fake: FakeWhisper) -> dict[str, str]:
    return {
        **os.environ,
        "AUTH_JWT_SECRET": SECRET,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.url,  # type: ignore[attr-defined]
        "DATA_DIR": str(data_dir),
        "GATEWAY_PORT": str(port),
        "LOG_FORMAT": "json",
    }


async def _run(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    _, err = await asyncio.wait_for(proc.communicate(), t(60))
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_busy_port_is_one_line_and_leaves_nothing_running(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = await _run(_env(tmp_path, port, fake_whisper))
    problem = [line for line in err.splitlines() if line.startswith("stt-gateway:")]
    assert code == 2, err
    assert len(problem) == 1 and "GATEWAY_PORT" in problem[0] and str(port) in problem[0]
    assert "Traceback" not in err
    await eventually(lambda: redis_servers_for(tmp_path) == [], timeout=10)
    gateway = await spawn_gateway(fake_whisper, tmp_path)  # the data dir is free again
    try:
        await gateway.listening()
    finally:
        await gateway.stop()


async def test_the_embedded_redis_dies_with_a_killed_gateway(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    gateway = await spawn_gateway(fake_whisper, tmp_path)
    await gateway.listening()
    assert len(redis_servers_for(tmp_path)) == 1
    gateway.proc.send_signal(signal.SIGKILL)
    await gateway.proc.wait()
    await eventually(lambda: redis_servers_for(tmp_path) == [], timeout=15)
    await gateway.stop()


async def test_two_gateways_on_one_data_dir_are_refused(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    first = await spawn_gateway(fake_whisper, tmp_path)
    try:
        await first.listening()
        code, err = await _run(_env(tmp_path, 0, fake_whisper))
        assert code == 2 and "in use" in err and "Traceback" not in err
        assert len(redis_servers_for(tmp_path)) == 1
    finally:
        await first.stop()
