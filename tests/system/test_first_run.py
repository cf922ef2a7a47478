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
from tests.support.helpers import eventually, gateway_env, http_json, spawn_gateway, t

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


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
    return gateway_env(fake, data_dir, GATEWAY_PORT=str(port))


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
    assert "gateway.started" not in err  # nothing claims to have started on a refused port
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


async def test_an_installed_gateway_starts_outside_the_repository(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """No config/ in the working directory: in dev the packaged policy is used."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    gateway = await spawn_gateway(fake_whisper, elsewhere / "data", cwd=elsewhere)
    try:
        port = await gateway.listening()
        status, index = await http_json("GET", f"http://127.0.0.1:{port}/")
        assert status == 200 and index["endpoints"]["listen"] == "/api/v1/listen"
        assert index["provider"] == "openai"
        status, ready = await http_json("GET", f"http://127.0.0.1:{port}/api/v1/ready")
        assert ready["checks"]["budget_policy"]["path"].endswith("budget-policy.dev.json")
    finally:
        await gateway.stop()


def test_version_and_serve_help_name_the_environment() -> None:
    import subprocess

    from gateway import __version__

    version = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"stt-gateway {__version__}"
    help_text = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "OPENAI_API_KEY" in help_text and "environment variables" in help_text
    loadtest = subprocess.run(
        [sys.executable, "-m", "loadtest", "capacity", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(default: 2)" in loadtest and "(default: 20.0)" in loadtest


async def test_a_missing_local_model_is_one_start_up_line(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    env = _env(tmp_path, 0, fake_whisper)
    env.update(STT_PROVIDER="local", LOCAL_WHISPER_MODEL=str(tmp_path / "no-model"))
    code, err = await _run(env)
    problem = [line for line in err.splitlines() if line.startswith("stt-gateway:")]
    assert code == 2, err
    assert len(problem) == 1 and "LOCAL_WHISPER_MODEL" in problem[0]
    assert "Traceback" not in err
    assert "gateway.started" not in err  # nothing claims to have started on a refused port
    await eventually(lambda: redis_servers_for(tmp_path) == [], timeout=10)


async def test_ctrl_c_stops_the_gateway_then_its_redis_without_noise(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """Ctrl-C reaches the terminal's whole process group: the embedded Redis must not
    die first (and be restarted, and fail the fleet's listener) while the gateway drains."""
    from tests.support.audio import tone
    from tests.support.helpers import GatewayProcess, GatewayServer, connect, gateway_env, token

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        env=gateway_env(fake_whisper, tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # a terminal's process group, apart from the tests'
    )
    gateway = GatewayProcess(proc)
    fake_whisper.behaviour.latency_ms = 1500  # the drain waits for a window: Redis must live
    try:
        port = await gateway.listening()
        stream = await connect(GatewayServer(None, None, port, fake_whisper), token())  # type: ignore[arg-type]
        await stream.next()
        await stream.send_audio(tone(440, 2.5))
        await eventually(lambda: fake_whisper.in_flight > 0)
        os.killpg(proc.pid, signal.SIGINT)
        messages = await stream.collect()
        await stream.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await gateway.stop()
    assert messages[-1]["type"] == "Termination"
    await asyncio.sleep(0.2)  # the last lines of the log
    events = [line.get("event") for line in gateway.lines]
    assert "gateway.stopped" in events
    noise = {"embedded_redis.exited", "embedded_redis.restarted", "fleet.listen_failed"}
    assert not noise & set(events), events
    await eventually(lambda: redis_servers_for(tmp_path) == [], timeout=10)


async def test_killing_make_run_stops_the_gateway_it_started(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """``kill <make pid>``: make passes SIGTERM on to its child, which must be the gateway
    (not a shell that dies and leaves the gateway holding the port)."""
    from tests.support.helpers import GatewayProcess, gateway_env

    proc = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",  # never reinstall here
        "run",
        cwd=ROOT,
        env=gateway_env(fake_whisper, tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    gateway = GatewayProcess(proc)
    try:
        port = await gateway.listening()
        proc.send_signal(signal.SIGTERM)  # to make alone, not its process group
        await asyncio.wait_for(proc.wait(), t(30))
        with socket.socket() as probe:  # the port is free: no orphan holds it
            probe.bind(("127.0.0.1", port))
        events = [line.get("event") for line in gateway.lines]
        assert "gateway.stopped" in events, events
    finally:
        try:  # whatever is left in make's session (an orphan, when this test fails)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        await gateway.stop()
    await eventually(lambda: redis_servers_for(tmp_path) == [], timeout=10)
