"""Fault tests through the whole gateway against the loopback simulated Whisper."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import assert_tiling, connect, eventually, open_stream, token


async def test_429_retry_after_is_honoured(make_gateway: GatewayFactory) -> None:
    server = await make_gateway()
    fake = server.fake
    fake.behaviour.mode = "429"
    fake.behaviour.retry_after = 0.4
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "Finalize"})
    warning = await stream.next()
    assert warning["type"] == "Warning" and warning["code"] == "RATE_LIMITED"
    fake.behaviour.mode = "normal"
    transcript = await stream.next()
    assert transcript["status"] == "ok"
    kinds = [kind for _, kind in fake.log]
    assert kinds[0] == "429" and kinds[-1] == "normal"
    gaps = [b[0] - a[0] for a, b in zip(fake.log, fake.log[1:], strict=False)]
    assert all(gap >= 0.4 - 0.02 for gap in gaps), gaps  # never earlier than Retry-After
    metrics = server.state.metrics
    assert (
        metrics.upstream_requests.labels(model="whisper-1", outcome="rate_limited")._value.get()
        >= 1
    )
    await stream.close()


async def test_429_retries_exhausted_drops_window(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_MAX_RETRIES=1)
    server.fake.behaviour.mode = "429"
    server.fake.behaviour.retry_after = 0.05
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.finish()
    [transcript] = stream.of_type("Transcript")
    assert transcript["status"] == "dropped" and transcript["reason"] == "STT_UNAVAILABLE"
    assert len(server.fake.log) == 2
    assert server.state.service is not None
    assert server.state.service.guard.state == "closed"  # 429s never open the circuit
    await stream.close()


@pytest.mark.parametrize(
    ("mode", "reason", "requests"),
    [("quota", "UPSTREAM_QUOTA", 1), ("reject", "UPSTREAM_REJECTED", 1)],
)
async def test_non_retryable_answers_are_dropped_at_once(
    make_gateway: GatewayFactory, mode: str, reason: str, requests: int
) -> None:
    server = await make_gateway()
    server.fake.behaviour.mode = mode
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.finish()
    [transcript] = stream.of_type("Transcript")
    assert transcript["status"] == "dropped" and transcript["reason"] == reason
    assert len(server.fake.log) == requests
    await stream.close()


async def test_garbage_answers_are_retried(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_MAX_RETRIES=3)
    server.fake.behaviour.mode = "garbage"
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "Finalize"})
    await eventually(lambda: len(server.fake.log) >= 2)  # answered with garbage, retried
    server.fake.behaviour.mode = "normal"
    await stream.finish()
    [transcript] = stream.of_type("Transcript")
    assert transcript["status"] == "ok"
    kinds = [kind for _, kind in server.fake.log]
    assert kinds[0] == "garbage" and kinds[-1] == "normal"
    await stream.close()


async def test_breaker_opens_holds_audio_and_drains_in_order(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(BREAKER_FAIL_MAX=3, BREAKER_RESET_SECONDS=0.5, STT_MAX_RETRIES=1)
    fake = server.fake
    service = server.state.service
    assert service is not None
    fake.behaviour.mode = "500"
    streams = [await connect(server, token(group=f"g-{i}")) for i in range(3)]
    for s in streams:
        await s.next()
    for i, s in enumerate(streams):
        await s.send_audio(tone(300 + 100 * i, 3.0))
    for _ in range(200):
        if service.guard.state != "closed":
            break
        await asyncio.sleep(0.02)
    assert service.guard.state in ("open", "half_open")
    warnings = [await s.next() for s in streams]
    assert {w["code"] for w in warnings} <= {"STT_UNAVAILABLE", "RATE_LIMITED"}
    assert any(w["code"] == "STT_UNAVAILABLE" for w in warnings)
    await asyncio.sleep(1.0)  # several probes fail while it is down (a rate, so real time)
    probes_while_down = len(fake.log)
    fake.behaviour.mode = "normal"
    for s in streams:
        await s.send_json({"type": "CloseStream"})
    for i, s in enumerate(streams):
        await s.collect()
        transcripts = s.of_type("Transcript")
        assert_tiling(transcripts, 3.0)
        assert [m["status"] for m in transcripts] == ["ok"] * 3, transcripts
        assert all(f"{300 + 100 * i} Hz" in m["text"] for m in transcripts)
        assert s.close_code == 1000
        await s.close()
    assert service.guard.state == "closed"
    metrics = server.state.metrics
    assert metrics.circuit_transitions.labels(to="open")._value.get() >= 1
    assert metrics.circuit_transitions.labels(to="closed")._value.get() >= 1
    assert metrics.calls_not_permitted._value.get() >= 1
    # While open, only single probes reached the upstream: far fewer calls than windows×retries.
    assert probes_while_down < 3 + 9 * 2


async def test_slow_jittery_upstream_keeps_seq_order(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_WINDOW_SECONDS=0.5, STT_MAX_IN_FLIGHT_PER_SESSION=4)
    server.fake.behaviour.latency_ms = 300
    server.fake.behaviour.jitter_ms = 290
    server.fake.behaviour.seed = 7
    stream = await open_stream(server, token())
    pcm = b"".join(tone(200 + 50 * i, 0.5) for i in range(8))
    await stream.send_audio(pcm)
    await stream.finish()
    transcripts = stream.of_type("Transcript")
    assert_tiling(transcripts, 4.0)
    assert all(m["status"] == "ok" for m in transcripts)
    freqs = [int(m["text"].split()[2]) for m in transcripts]
    assert freqs == sorted(freqs)  # each window's own audio, in order
    await stream.close()


async def test_upstream_down_connection_refused_is_held_then_dropped_at_close(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        BREAKER_FAIL_MAX=2,
        STT_MAX_RETRIES=1,
        SHUTDOWN_GRACE_SECONDS=1.0,
    )
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    messages = await stream.finish()
    [transcript] = stream.of_type("Transcript")
    assert transcript["status"] == "dropped" and transcript["reason"] == "STT_UNAVAILABLE"
    assert messages[-1]["type"] == "Termination" and messages[-1]["dropped"] == 1
    await stream.close()


async def test_process_wide_concurrency_limit(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_MAX_CONCURRENCY=2, STT_WINDOW_SECONDS=0.5)
    server.fake.behaviour.latency_ms = 150
    streams = [await connect(server, token(group=f"g-{i}")) for i in range(5)]
    for s in streams:
        await s.next()
    await asyncio.gather(*(s.send_audio(tone(400, 1.5)) for s in streams))
    for s in streams:
        await s.send_json({"type": "CloseStream"})
    for s in streams:
        await s.collect()
        assert [m["status"] for m in s.of_type("Transcript")] == ["ok"] * 3
        await s.close()
    assert server.fake.max_in_flight == 2


async def test_a_refused_api_key_is_visible_everywhere(make_gateway: GatewayFactory) -> None:
    from structlog.testing import capture_logs

    from tests.support.helpers import http_json

    server = await make_gateway()
    server.fake.behaviour.mode = "unauthorized"
    stream = await open_stream(server, token())
    with capture_logs() as logs:
        for _ in range(3):
            await stream.send_audio(tone(440, 1.0))
        await stream.finish()
    await stream.close()
    transcripts = stream.of_type("Transcript")
    assert [t["reason"] for t in transcripts] == ["UPSTREAM_REJECTED"] * 3
    warnings = [w["code"] for w in stream.of_type("Warning")]
    assert warnings == ["UPSTREAM_REJECTED"]  # once per session, not per window
    errors = [e for e in logs if e["event"] == "upstream.credentials_refused"]
    assert len(errors) == 1 and errors[0]["log_level"] == "error"  # rate-limited
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["whisper"]["status"] == "rejected"
    assert "OPENAI_API_KEY" in body["checks"]["whisper"]["reason"]
    assert server.state.metrics.upstream_auth_failures._value.get() == 3

    server.fake.behaviour.mode = "normal"
    stream = await open_stream(server, token())
    await stream.send_audio(tone(440, 1.0))
    await stream.finish()
    await stream.close()
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert body["status"] == "ready" and body["checks"]["whisper"]["status"] == "ok"
