"""The local Whisper provider: real speech in, its words out, through the whole gateway."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.simulated.whisper import FakeWhisper
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.transcriber import TranscriptionRequest
from tests.conftest import GatewayFactory
from tests.support.audio import silence
from tests.support.helpers import (
    connect,
    eventually,
    http_json,
    open_stream,
    spawn_gateway,
    t,
    token,
)
from tests.support.speech import sentence

pytestmark = pytest.mark.slow
SPOKEN = "Today we will read the chapter about plants and how they make food from sunlight."
# Windows queue on the one CPU model: after CloseStream the last of them may wait longer than
# the tests' usual bound on finishing (which drops what is still unanswered) on a busy machine.
LOCAL = {"STT_PROVIDER": "local", "STT_WINDOW_SECONDS": "5", "SHUTDOWN_GRACE_SECONDS": "180"}


async def _stream(server: Any, pcm: bytes) -> list[dict[str, Any]]:
    stream = await open_stream(server, token("s-1", "local"))
    await stream.send_audio(pcm)
    await stream.send_json({"type": "CloseStream"})
    messages = await stream.collect(timeout=120)
    await stream.close()
    return messages


async def test_spoken_words_come_back_through_stt_gateway_serve(
    fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    gateway = await spawn_gateway(
        fake_whisper,
        tmp_path / "data",
        STT_PROVIDER="local",
        OPENAI_API_KEY="",
        STT_WINDOW_SECONDS="8",
    )
    try:
        port = await gateway.listening()
        async with asyncio.timeout(t(60)):
            while True:
                status, ready = await http_json("GET", f"http://127.0.0.1:{port}/api/v1/ready")
                if status == 200:
                    break
                assert ready["checks"]["whisper"]["status"] == "loading"
                await asyncio.sleep(0.2)
        assert ready["checks"]["whisper"]["provider"] == "local"
        assert ready["checks"]["whisper"]["model"] == "tiny.en"
        started = next(line for line in gateway.lines if line.get("event") == "gateway.started")
        assert started["provider"] == "local" and started["model"] == "tiny.en"

        import aiohttp

        pcm = sentence(SPOKEN) + silence(1.0)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{port}/api/v1/listen",
                headers={"Authorization": f"Bearer {token('s-1', 'serve')}"},
            ) as ws,
        ):
            begin = await ws.receive_json()
            assert begin["config"]["provider"] == "local" and begin["config"]["model"] == "tiny.en"
            for i in range(0, len(pcm), 3200):
                await ws.send_bytes(pcm[i : i + 3200])
            await ws.send_json({"type": "CloseStream"})
            messages = [m.json() async for m in ws if m.type is aiohttp.WSMsgType.TEXT]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            metrics = await response.text()
    finally:
        await gateway.stop()
    text = " ".join(m["text"] for m in messages if m["type"] == "Transcript").lower()
    for word in ("chapter", "plants", "food", "sunlight"):
        assert word in text, text
    assert messages[-1]["type"] == "Termination"
    assert messages[-1]["cost_usd"] == 0  # tiny.en is priced 0 in the shipped policies
    assert 'stt_upstream_info{model="tiny.en",provider="local"} 1.0' in metrics
    assert 'stt_audio_billed_seconds_total{model="tiny.en"}' in metrics


async def test_readiness_and_streams_wait_while_the_model_loads(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = LocalTranscriber._load_blocking

    def slow_load(self: LocalTranscriber) -> Any:
        release.wait(30)
        return original(self)

    monkeypatch.setattr(LocalTranscriber, "_load_blocking", slow_load)
    server = await make_gateway(**LOCAL)
    try:
        status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
        assert status == 503 and ready["status"] == "not_ready"
        assert ready["checks"]["whisper"]["status"] == "loading"
        stream = await connect(server, token())
        messages = await stream.collect()
        await stream.close()
        assert messages[-1]["code"] == "OVERLOADED" and stream.close_code == 1013
    finally:
        release.set()
    local = server.state.local
    assert local is not None
    await asyncio.wait_for(local.loaded.wait(), t(30))
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["checks"]["whisper"]["status"] == "ok"


async def test_a_window_that_fails_in_the_model_is_one_dropped_transcript(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = LocalTranscriber._transcribe_blocking
    calls = []

    def flaky(self: LocalTranscriber, request: TranscriptionRequest) -> Any:
        calls.append(request.duration)
        if len(calls) == 2:
            raise RuntimeError("CTranslate2 failed")
        return original(self, request)

    monkeypatch.setattr(LocalTranscriber, "_transcribe_blocking", flaky)
    server = await make_gateway(**LOCAL, STT_MAX_IN_FLIGHT_PER_SESSION=1)
    await asyncio.wait_for(server.state.local.loaded.wait(), t(30))  # type: ignore[union-attr]
    speech = sentence("The roots pull water from the soil.") + silence(1.5)
    messages = await _stream(server, speech * 3)
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    dropped = [m for m in transcripts if m["status"] == "dropped"]
    assert len(dropped) == 1 and dropped[0]["reason"] == "STT_UNAVAILABLE"
    assert len(calls) == len([m for m in transcripts if m["status"] != "silence"])  # no retry
    texts = [(m["status"], m["text"]) for m in transcripts]
    assert any("soil" in m["text"].lower() for m in transcripts if m["status"] == "ok"), texts


async def test_the_worker_pool_bound_holds(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = LocalTranscriber._transcribe_blocking
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def counted(self: LocalTranscriber, request: TranscriptionRequest) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return original(self, request)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(LocalTranscriber, "_transcribe_blocking", counted)
    server = await make_gateway(**LOCAL, LOCAL_WHISPER_WORKERS=1)
    await asyncio.wait_for(server.state.local.loaded.wait(), t(30))  # type: ignore[union-attr]
    speech = sentence("Every green leaf has tiny openings.") + silence(1.0)
    results = await asyncio.gather(*(_stream_group(server, speech * 2, f"g-{i}") for i in range(4)))
    assert peak[0] == 1
    for transcripts in results:
        assert [m["seq"] for m in transcripts] == list(range(len(transcripts)))
        statuses = [(m["status"], m.get("reason")) for m in transcripts]
        assert all(status in ("ok", "silence") for status, _ in statuses), statuses
    await eventually(lambda: len(server.state.registry) == 0)


async def _stream_group(server: Any, pcm: bytes, group: str) -> list[dict[str, Any]]:
    stream = await open_stream(server, token("s-1", group))
    await stream.send_audio(pcm)
    await stream.send_json({"type": "CloseStream"})
    messages = await stream.collect(timeout=180)
    await stream.close()
    return [m for m in messages if m["type"] == "Transcript"]


def test_a_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    missing = LocalTranscriber(
        model=str(tmp_path / "nowhere"), device="cpu", compute_type="int8", workers=1
    )
    assert "no such directory" in str(missing.model_problem())
    (tmp_path / "empty").mkdir()
    empty = LocalTranscriber(
        model=str(tmp_path / "empty"), device="cpu", compute_type="int8", workers=1
    )
    assert "model.bin" in str(empty.model_problem())
    unknown = LocalTranscriber(model="huge-v9", device="cpu", compute_type="int8", workers=1)
    assert "neither a directory nor" in str(unknown.model_problem())
    bundled = LocalTranscriber(model="tiny.en", device="cpu", compute_type="int8", workers=1)
    assert bundled.model_problem() is None
