"""Fuzzing the stream endpoint: junk floods from clients that never read, random frames.

The gateway runs in its own process so its memory, read from ``/metrics``, is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.simulated.whisper import FakeWhisper
from tests.support.audio import tone
from tests.support.helpers import GatewayProcess, assert_tiling, spawn_gateway, t, token
from tests.support.wsframes import frame, upgrade_request

pytestmark = pytest.mark.slow

PROTOCOL_CLOSE_CODES = {
    1000,
    1001,
    1007,
    1008,
    1009,
    1011,
    1013,
    4000,
    4001,
    4003,
    4008,
    4009,
    4029,
    4031,
    4402,
}


@pytest.fixture
async def gateway_process(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> AsyncIterator[tuple[GatewayProcess, int]]:
    process = await spawn_gateway(fake_whisper, tmp_path, IDLE_TIMEOUT_SECONDS="60")
    port = await process.listening()
    yield process, port
    await process.stop()
    tracebacks = [line for line in process.lines if "Traceback" in json.dumps(line)]
    assert not tracebacks, tracebacks[:2]


async def metric(port: int, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


async def test_junk_flood_from_a_client_that_never_reads_is_bounded(
    gateway_process: tuple[GatewayProcess, int],
) -> None:
    _, port = gateway_process
    before = await metric(port, "process_resident_memory_bytes")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request("/api/v1/listen", token("s-1", "flood")))
    await reader.readuntil(b"\r\n\r\n")
    junk = b"".join(frame(f"x{i % 10}".encode()) for i in range(4096))
    sent = 0
    while sent < 8 * 1024 * 1024:  # 8 MiB of 2-byte junk frames, never reading a reply
        writer.write(junk)
        await writer.drain()
        sent += len(junk)
    await asyncio.sleep(t(1))
    during = await metric(port, "process_resident_memory_bytes")
    assert await metric(port, "stt_sessions_active") == 1
    writer.close()
    await asyncio.sleep(t(1))
    after = await metric(port, "process_resident_memory_bytes")
    mib = 2**20
    print(f"RSS before {before / mib:.1f} MiB, during {during / mib:.1f}, after {after / mib:.1f}")
    assert during - before < 40 * 1024 * 1024, (before, during)
    assert after - before < 40 * 1024 * 1024, (before, after)


def _random_frames(rng: random.Random) -> list[bytes | str]:
    choices: list[bytes | str] = []
    for _ in range(rng.randint(1, 30)):
        kind = rng.random()
        if kind < 0.4:
            choices.append(rng.randbytes(rng.choice([0, 1, 2, 3, 320, 3200, 3201, 65536, 65538])))
        elif kind < 0.6:
            choices.append(
                rng.choice(
                    ['{"type":"KeepAlive"}', '{"type":"Finalize"}', '{"type":"CloseStream"}']
                )
            )
        elif kind < 0.8:
            choices.append(
                json.dumps({"type": rng.choice(["x", None, 1, [], "Begin"]), "n": rng.random()})
            )
        else:
            choices.append(rng.randbytes(rng.randint(0, 200)).decode("latin-1"))
    return choices


async def _fuzz_one(port: int, seed: int) -> tuple[list[dict[str, object]], int | None]:
    rng = random.Random(seed)
    messages: list[dict[str, object]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"ws://127.0.0.1:{port}/api/v1/listen",
            headers={"Authorization": f"Bearer {token('s-1', f'fuzz-{seed}')}"},
            autoclose=False,
            max_msg_size=0,
        ) as ws,
    ):
        for item in _random_frames(rng):
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_str(item)
            except ConnectionError:
                break
        if not ws.closed:
            await ws.send_str('{"type":"CloseStream"}')
        async with asyncio.timeout(t(30)):
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(msg.data))
        return messages, ws.close_code


async def test_random_frames_get_protocol_answers_and_spare_other_sessions(
    gateway_process: tuple[GatewayProcess, int],
) -> None:
    _, port = gateway_process
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            f"ws://127.0.0.1:{port}/api/v1/listen",
            headers={"Authorization": f"Bearer {token('s-1', 'bystander')}"},
        )
        assert json.loads((await ws.receive()).data)["type"] == "Begin"
        results = await asyncio.gather(*(_fuzz_one(port, seed) for seed in range(40)))
        pcm = tone(440, 3.0)
        for i in range(0, len(pcm), 3200):
            await ws.send_bytes(pcm[i : i + 3200])
        await ws.send_str('{"type":"CloseStream"}')
        bystander = [json.loads(m.data) async for m in ws if m.type is aiohttp.WSMsgType.TEXT]
    transcripts = [m for m in bystander if m["type"] == "Transcript"]
    assert_tiling(transcripts, 3.0)
    assert all(m["status"] == "ok" for m in transcripts)
    assert bystander[-1]["type"] == "Termination"
    for messages, code in results:
        assert code in PROTOCOL_CLOSE_CODES, (code, messages[-3:])
        assert messages[0]["type"] == "Begin"
        assert all(
            m["type"] in {"Begin", "Transcript", "Warning", "Error", "Termination", "Budget"}
            for m in messages
        )
        if code == 1000:
            assert messages[-1]["type"] == "Termination"
        else:
            assert messages[-1]["type"] == "Error"
        seqs = [m["seq"] for m in messages if m["type"] == "Transcript"]
        assert seqs == list(range(len(seqs)))
    assert await metric(port, "stt_sessions_active") == 0


async def test_a_client_that_never_reads_its_transcripts_is_dropped(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """Thousands of short (silent) windows a second, never read: once its outbox passes the
    bound its connection is dropped (the session waits RESUME_SECONDS for a resume that
    does not come, then ends), and it is accounted for."""
    process = await spawn_gateway(
        fake_whisper,
        tmp_path,
        MAX_PENDING_AUDIO_SECONDS="6000",
        IDLE_TIMEOUT_SECONDS="60",
        RESUME_SECONDS="1",
    )
    try:
        port = await process.listening()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(upgrade_request("/api/v1/listen", token("s-1", "never-reads")))
        await reader.readuntil(b"\r\n\r\n")
        windows = (frame(b"\0" * 3200, 0x2) + frame(b'{"type":"Finalize"}')) * 500
        with contextlib.suppress(ConnectionError):
            for _ in range(200):  # at most 100,000 windows
                writer.write(windows)
                await writer.drain()
        writer.close()
        events = {line.get("event") for line in process.lines}
        async with asyncio.timeout(t(20)):
            while "session.ended" not in events:
                await asyncio.sleep(0.1)
                events = {line.get("event") for line in process.lines}
        assert {"session.slow_consumer", "session.detached"} <= events
        assert await metric(port, "stt_sessions_active") == 0
        ended = next(line for line in process.lines if line.get("event") == "session.ended")
        assert ended["reason"] == "disconnected"
    finally:
        await process.stop()
