"""Protocol conformance over real sockets: every message, close code and bad input."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from gateway.auth.tokens import mint
from tests.conftest import GatewayFactory
from tests.support.audio import silence, tone
from tests.support.helpers import (
    SECRET,
    GatewayServer,
    assert_tiling,
    connect,
    eventually,
    open_stream,
    token,
)


@pytest.mark.parametrize("via", ["subprotocol", "header", "query"])
async def test_all_three_ways_to_pass_the_token(gateway: GatewayServer, via: str) -> None:
    stream = await connect(gateway, token(), via=via)
    begin = await stream.next()
    assert begin["type"] == "Begin"
    if via == "subprotocol":
        assert stream.ws.protocol == "token"
    await stream.close()


async def test_begin_transcript_termination(gateway: GatewayServer) -> None:
    jwt = token("s-7", "g-3")
    stream = await connect(gateway, jwt, query={"language": "es", "sample_rate": "16000"})
    begin = await stream.next()
    assert begin["school_id"] == "s-7" and begin["group_id"] == "g-3"
    assert begin["session_id"]
    assert begin["expires_at"].endswith("Z")
    assert begin["config"] == {
        "encoding": "pcm_s16le",
        "sample_rate": 16000,
        "channels": 1,
        "language": "es",
        "model": "whisper-1",
        "window_seconds": 1.0,
        "provider": "openai",
        "interim_results": False,
    }
    await stream.send_audio(tone(440, 2.0) + silence(1.0) + tone(440, 0.5))
    messages = await stream.finish()
    transcripts = stream.of_type("Transcript")
    assert_tiling(transcripts, 3.5)
    for m in transcripts:
        assert set(m) >= {
            "type",
            "seq",
            "start",
            "end",
            "status",
            "text",
            "model",
            "latency_ms",
            "from_finalize",
        }
        assert isinstance(m["latency_ms"], int) and m["latency_ms"] >= 0
    statuses = [m["status"] for m in transcripts]
    assert statuses.count("silence") >= 1 and "ok" in statuses
    for m in transcripts:
        if m["status"] == "silence":
            assert m["text"] == ""
        if m["status"] == "ok":
            assert "440 Hz" in m["text"]
    assert transcripts[-1]["from_finalize"] is True
    term = messages[-1]
    assert term["type"] == "Termination" and term["reason"] == "client_close"
    assert term["audio_seconds"] == pytest.approx(3.5)
    assert term["windows"] == len(transcripts)
    assert term["transcribed"] == statuses.count("ok")
    assert term["silence"] == statuses.count("silence")
    assert term["dropped"] == 0
    assert term["cost_usd"] > 0
    assert stream.close_code == 1000
    assert gateway.fake.received[0].language == "es"
    await stream.close()


async def test_prompt_continuity_when_turned_on(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(STT_PROMPT_CONTINUITY=True)
    stream = await open_stream(gateway, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "Finalize"})
    first = await stream.next()
    assert first["status"] == "ok"
    await stream.send_audio(tone(660, 1.0))
    await stream.finish()
    prompts = [r.prompt for r in gateway.fake.received]
    assert prompts[0] is None
    assert prompts[1] == first["text"]
    await stream.close()


async def test_origin_not_allowed_is_403_without_upgrade(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(ALLOWED_ORIGINS="https://school.example")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(
                server.ws_url,
                headers={"Origin": "https://evil.example"},
                protocols=("token", token()),
            )
        assert info.value.status == 403
        ws = await session.ws_connect(
            server.ws_url,
            headers={"Origin": "https://school.example"},
            protocols=("token", token()),
        )
        assert (await ws.receive_json())["type"] == "Begin"
        await ws.close()


@pytest.mark.parametrize(
    "jwt",
    [
        None,
        "not-a-jwt",
        mint("another-secret-another-secret-another", school_id="s-1", group_id="g-1"),
        mint(SECRET, school_id="s-1", group_id="g-1", ttl_seconds=-10),
    ],
    ids=["missing", "garbage", "wrong-signature", "expired"],
)
async def test_unauthorized_is_error_then_4001(gateway: GatewayServer, jwt: str | None) -> None:
    stream = await connect(gateway, jwt)
    error = await stream.next()
    assert error["type"] == "Error" and error["code"] == "UNAUTHORIZED"
    assert error["retryable"] is False
    await stream.collect()
    assert stream.close_code == 4001
    assert gateway.fake.received == []
    await stream.close()


async def test_token_without_group_is_forbidden_4003(gateway: GatewayServer) -> None:
    stream = await connect(gateway, mint(SECRET, school_id=None, role="platform_admin"))
    error = await stream.next()
    assert error["code"] == "FORBIDDEN"
    await stream.collect()
    assert stream.close_code == 4003
    await stream.close()


@pytest.mark.parametrize(
    "query",
    [
        {"encoding": "opus"},
        {"sample_rate": "4000"},
        {"sample_rate": "abc"},
        {"channels": "2"},
        {"language": "english"},
        {"model": "not-a-model"},
        {"bogus": "1"},
    ],
)
async def test_bad_query_parameter_is_4000(gateway: GatewayServer, query: dict[str, str]) -> None:
    stream = await connect(gateway, token(), query=query)
    error = await stream.next()
    assert error["type"] == "Error" and error["code"] == "BAD_CONFIG"
    assert next(iter(query)) in error["message"] or "unknown" in error["message"]
    await stream.collect()
    assert stream.close_code == 4000
    await stream.close()


async def test_capacity_is_1013_with_retry_after(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(MAX_SESSIONS=1)
    first = await open_stream(server, token(group="g-1"))
    second = await connect(server, token(group="g-2"))
    error = await second.next()
    assert error["code"] == "OVERLOADED" and error["retryable"] is True
    assert error["retry_after"] > 0
    await second.collect()
    assert second.close_code == 1013
    await first.close()
    await second.close()


async def test_second_connection_replaces_the_first_4009(gateway: GatewayServer) -> None:
    old = await open_stream(gateway, token(group="g-1"))
    await old.send_audio(tone(500, 1.5))
    new = await connect(gateway, token(group="g-1"))
    assert (await new.next())["type"] == "Begin"
    messages = await old.collect()
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    assert_tiling(transcripts, 1.5)  # pending windows finished first
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "REPLACED"
    assert old.close_code == 4009
    await new.finish()
    assert new.close_code == 1000
    metrics = gateway.state.metrics
    assert metrics.stream_restarts._value.get() == 1
    await old.close()
    await new.close()


async def test_idle_timeout_4031_and_keepalive_resets_it(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(IDLE_TIMEOUT_SECONDS=0.6)
    stream = await open_stream(server, token())
    for _ in range(4):  # 1.2 s of KeepAlive keeps it open
        await asyncio.sleep(0.3)
        await stream.send_json({"type": "KeepAlive"})
    assert not stream.ws.closed
    messages = await stream.collect()
    assert messages[-1]["code"] == "IDLE_TIMEOUT"
    assert stream.close_code == 4031
    await stream.close()


async def test_finalize_closes_a_short_window(gateway: GatewayServer) -> None:
    stream = await open_stream(gateway, token())
    await stream.send_audio(tone(300, 0.4))
    await stream.send_json({"type": "Finalize"})
    m = await stream.next()
    assert m["type"] == "Transcript" and m["from_finalize"] is True
    assert m["end"] == pytest.approx(0.4)
    await stream.finish()
    assert stream.of_type("Termination")[0]["windows"] == 1
    await stream.close()


@pytest.mark.parametrize("bad", ["not json", "[1,2]", '{"type":"Bogus"}', '{"no":"type"}'])
async def test_bad_text_message_is_a_warning(gateway: GatewayServer, bad: str) -> None:
    stream = await open_stream(gateway, token())
    await stream.ws.send_str(bad)
    warning = await stream.next()
    assert warning == {"type": "Warning", "code": "BAD_MESSAGE", "message": warning["message"]}
    await stream.send_audio(tone(440, 0.5))
    await stream.finish()
    assert stream.close_code == 1000
    await stream.close()


async def test_odd_frame_is_bad_audio_1007(gateway: GatewayServer) -> None:
    stream = await open_stream(gateway, token())
    await stream.send_audio(tone(440, 1.2))
    await stream.ws.send_bytes(b"\x00\x01\x02")
    messages = await stream.collect()
    assert_tiling([m for m in messages if m["type"] == "Transcript"], 1.2)
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "BAD_AUDIO"
    assert stream.close_code == 1007
    await stream.close()


async def test_empty_frames_are_ignored(gateway: GatewayServer) -> None:
    stream = await open_stream(gateway, token())
    await stream.ws.send_bytes(b"")
    await stream.send_audio(tone(440, 0.3))
    await stream.finish()
    assert stream.close_code == 1000
    await stream.close()


async def test_frame_over_max_is_1009(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(MAX_FRAME_BYTES=4096)
    stream = await open_stream(server, token())
    await stream.ws.send_bytes(bytes(4098))
    messages = await stream.collect()
    assert messages[-1]["type"] == "Error"
    assert stream.close_code == 1009
    await stream.close()


async def test_token_expiry_mid_session_is_4008(gateway: GatewayServer) -> None:
    jwt = mint(SECRET, school_id="s-1", group_id="g-1", ttl_seconds=2, now=time.time() - 0.5)
    stream = await open_stream(gateway, jwt)
    await stream.send_audio(tone(440, 0.5))
    messages = await stream.collect(timeout=10)
    assert [m["type"] for m in messages][-2:] == ["Transcript", "Error"]
    assert messages[-1]["code"] == "SESSION_EXPIRED"
    assert stream.close_code == 4008
    await stream.close()


async def test_audio_far_ahead_of_real_time_is_4029(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(MAX_PENDING_AUDIO_SECONDS=1.0)
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 6.0))
    messages = await stream.collect()
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    assert transcripts, "pending windows are reported, not lost"
    assert all(m["status"] in ("ok", "dropped") for m in transcripts)
    assert any(m.get("reason") == "BACKLOG" for m in transcripts)
    assert [m["seq"] for m in transcripts] == list(range(len(transcripts)))
    assert messages[-1]["code"] == "BACKLOG"
    assert stream.close_code == 4029
    await stream.close()


async def test_backlog_drops_oldest_pending_windows(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(MAX_PENDING_AUDIO_SECONDS=2.0, STT_WINDOW_SECONDS=0.5)
    server.fake.behaviour.latency_ms = 1500
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 3.5))
    messages = await stream.finish()
    transcripts = stream.of_type("Transcript")
    assert_tiling(transcripts, 3.5)
    reasons = [m.get("reason") for m in transcripts if m["status"] == "dropped"]
    assert reasons and set(reasons) == {"BACKLOG"}
    term = messages[-1]
    assert term["type"] == "Termination"
    assert term["dropped"] == len(reasons)
    assert term["windows"] == len(transcripts)
    await stream.close()


async def test_unknown_route_404_envelope(gateway: GatewayServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(gateway.http + "/nope") as r:
        assert r.status == 404
        body = await r.json()
        assert body["error"]["code"] == "NOT_FOUND"
        assert body["error"]["request_id"]


async def test_client_that_vanishes_does_not_disturb_others(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(RESUME_SECONDS=1)  # the vanished session waits 1 s for it
    gateway.fake.behaviour.latency_ms = 300
    steady = await open_stream(gateway, token(group="steady"))
    vanisher = await open_stream(gateway, token(group="vanisher"))
    await vanisher.send_audio(tone(700, 1.5))
    await steady.send_audio(tone(300, 1.5))
    await vanisher.session.close()  # mid-window, transcripts pending: gone without a close
    await steady.send_audio(tone(300, 1.5))
    messages = await steady.finish()
    assert_tiling(steady.of_type("Transcript"), 3.0)
    assert all("300 Hz" in m["text"] for m in steady.of_type("Transcript"))
    assert messages[-1]["type"] == "Termination"
    await steady.close()
    await eventually(lambda: len(gateway.state.registry) == 0, timeout=10)
    ended = gateway.state.metrics.sessions_ended
    assert ended.labels(reason="disconnected")._value.get() == 1
    assert gateway.state.metrics.sessions_detached._value.get() == 0


async def test_internal_error_is_1011_and_other_sessions_continue(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.stream.core import SessionCore

    original = SessionCore.receive_text

    def explode(self: SessionCore, text: str, now: float) -> None:
        if "boom" in text:
            raise RuntimeError("bug")
        original(self, text, now)

    monkeypatch.setattr(SessionCore, "receive_text", explode)
    healthy = await open_stream(gateway, token(group="healthy"))
    broken = await open_stream(gateway, token(group="broken"))
    await broken.send_audio(tone(440, 1.0))
    await broken.ws.send_str("boom")
    messages = await broken.collect()
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "INTERNAL"
    assert_tiling(broken.of_type("Transcript"), 1.0)
    assert broken.close_code == 1011
    await healthy.send_audio(tone(300, 1.0))
    await healthy.finish()
    assert healthy.close_code == 1000
    await broken.close()
    await healthy.close()


async def test_a_48_khz_microphone_declared_as_16_khz_is_warned(gateway: GatewayServer) -> None:
    """protocol.md ``SUSPECT_AUDIO``: a live source arrives at its true rate."""
    import numpy as np

    from tests.support.speech import sentence

    speech = np.frombuffer(sentence("Plants need sunlight and water to grow."), dtype="<i2")
    seconds = 7.0
    steps = np.arange(int(seconds * 48000)) / 3  # 16 kHz speech played out at 48 kHz
    pcm = np.interp(steps % len(speech), np.arange(len(speech)), speech).astype("<i2").tobytes()
    stream = await connect(gateway, token())  # sample_rate defaults to 16000
    await stream.next()
    await stream.send_audio(pcm, frame_seconds=0.1, rate=48000, pace=0.1)
    messages = await stream.finish()
    await stream.close()
    warnings = [m for m in messages if m["type"] == "Warning"]
    assert [w["code"] for w in warnings] == ["SUSPECT_AUDIO"], warnings
    assert "48000" in warnings[0]["message"] and "sample_rate=16000" in warnings[0]["message"]
    assert messages[-1]["type"] == "Termination"  # a warning, not an ending: all transcribed
    assert_tiling(stream.of_type("Transcript"), seconds * 3)


async def test_float_samples_sent_as_pcm_s16le_are_warned(gateway: GatewayServer) -> None:
    import numpy as np

    from tests.support.speech import sentence

    speech = np.frombuffer(sentence("Can you tell me what seven times eight is?"), dtype="<i2")
    floats = (speech.astype("<f4") / 32768).tobytes()  # twice the bytes: 2 samples each
    stream = await open_stream(gateway, token())
    await stream.send_audio(floats)
    messages = await stream.finish()
    await stream.close()
    warnings = [m for m in messages if m["type"] == "Warning"]
    assert [w["code"] for w in warnings] == ["SUSPECT_AUDIO"], warnings
    assert "32-bit float" in warnings[0]["message"]
