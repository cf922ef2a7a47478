"""Budget enforcement in live streams, with the ledger healthy, full, down and restarted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.budget import WINDOW_MICRO, usage
from tests.support.helpers import (
    GatewayServer,
    assert_tiling,
    eventually,
    http_json,
    open_stream,
    stream_and_close,
    token,
    write_policy,
)
from tests.support.redis_server import RedisServer

CAP_SCHOOL = "cap-school"


async def _stream_until_refused(server: GatewayServer, index: int) -> list[dict[str, object]]:
    stream = await open_stream(server, token(CAP_SCHOOL, f"class-{index}"))
    for _ in range(12):
        if stream.ws.closed:
            break
        try:
            await stream.send_audio(tone(300 + 10 * index, 1.0))
        except ConnectionError:
            break
        await asyncio.sleep(0.05)
    messages = await stream.collect(timeout=60)
    assert stream.close_code == 4402, (index, stream.close_code, messages[-1])
    await stream.close()
    return messages


async def test_30_classrooms_never_take_the_school_past_its_cap(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    cap_usd = 10 * WINDOW_MICRO / 1_000_000
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={CAP_SCHOOL: {"daily_limit_usd": cap_usd, "timezone": "UTC"}},
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    results = await asyncio.gather(*(_stream_until_refused(server, i) for i in range(30)))
    ok_windows = 0
    for messages in results:
        transcripts = [m for m in messages if m["type"] == "Transcript"]
        assert [m["seq"] for m in transcripts] == list(range(len(transcripts)))
        position = 0.0
        for m in transcripts:
            assert m["start"] == pytest.approx(position)
            position = m["end"]  # type: ignore[assignment]
        assert all(m["status"] == "ok" or m.get("reason") == "BUDGET_EXCEEDED" for m in transcripts)
        assert any(m.get("reason") == "BUDGET_EXCEEDED" for m in transcripts)
        assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "BUDGET_EXCEEDED"
        ok_windows += sum(m["status"] == "ok" for m in transcripts)
    doc = await usage(server, CAP_SCHOOL)
    assert doc["spent_usd"] <= cap_usd  # type: ignore[operator]
    assert doc["spent_usd"] == pytest.approx(ok_windows * WINDOW_MICRO / 1_000_000)
    assert doc["reserved_usd"] == 0
    assert doc["status"] == "exceeded"
    metrics = server.state.metrics
    assert metrics.sessions_ended.labels(reason="budget_exhausted")._value.get() == 30


async def test_downgrade_switches_to_the_cheaper_model(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "policy.json",
        schools={"dg": {"daily_limit_usd": 0.0004, "timezone": "UTC"}},
        downgrade=[{"at_percent": 50, "model": "gpt-4o-mini-transcribe"}],
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy, STT_MAX_IN_FLIGHT_PER_SESSION=1)
    stream = await open_stream(server, token("dg", "g"))
    models = [(await _one_window(stream))["model"] for _ in range(3)]
    assert models[0] == "whisper-1"
    assert models[-1] == "gpt-4o-mini-transcribe"
    assert server.fake.received[-1].model == "gpt-4o-mini-transcribe"
    while not stream.of_type("Budget"):  # the notice is sent off the window's path
        await stream.next()
    budget = stream.of_type("Budget")
    assert budget[0]["threshold"] == 50 and budget[0]["percent_used"] >= 50
    await stream.close()


async def test_embedded_ledger_survives_a_restart(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    data = str(tmp_path / "shared-data")
    first = await make_gateway(DATA_DIR=data)
    await stream_and_close(first, tone(440, 2.0), jwt=token("s-1", "g"))
    spent = (await usage(first, "s-1"))["spent_usd"]
    assert spent == pytest.approx(2 * WINDOW_MICRO / 1_000_000)
    await first.stop()
    second = await make_gateway(DATA_DIR=data)
    assert (await usage(second, "s-1"))["spent_usd"] == spent


async def _one_window(stream: object) -> dict[str, object]:
    await stream.send_audio(tone(440, 1.0))  # type: ignore[attr-defined]
    await stream.send_json({"type": "Finalize"})  # type: ignore[attr-defined]
    while True:
        message = await stream.next()  # type: ignore[attr-defined]
        if message["type"] == "Transcript":
            return dict(message)


async def test_redis_down_strict_drops_with_budget_unavailable_and_recovers(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    server = await make_gateway(REDIS_URL=redis_server.url, BUDGET_ENFORCEMENT_MODE="strict")
    stream = await open_stream(server, token())
    assert (await _one_window(stream))["status"] == "ok"
    redis_server.kill()
    down = await _one_window(stream)
    assert down["status"] == "dropped" and down["reason"] == "BUDGET_UNAVAILABLE"
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 503 and ready["status"] == "not_ready"
    assert ready["checks"]["redis"]["status"] == "down"
    redis_server.start()
    await eventually(lambda: True)
    recovered = None
    for _ in range(20):
        recovered = await _one_window(stream)
        if recovered["status"] == "ok":
            break
        await asyncio.sleep(0.2)
    assert recovered is not None and recovered["status"] == "ok"
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["checks"]["redis"]["status"] == "ok"
    await stream.finish()
    transcripts = stream.of_type("Transcript")
    assert_tiling(transcripts, len(transcripts) * 1.0)
    assert server.state.metrics.budget_reservations.labels(outcome="error")._value.get() >= 1
    await stream.close()


async def test_redis_down_advisory_never_refuses(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    server = await make_gateway(REDIS_URL=redis_server.url, BUDGET_ENFORCEMENT_MODE="advisory")
    stream = await open_stream(server, token())
    assert (await _one_window(stream))["status"] == "ok"
    redis_server.kill()
    assert (await _one_window(stream))["status"] == "ok"
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["status"] != "not_ready"
    redis_server.start()
    await stream.finish()
    assert stream.close_code == 1000
    assert server.state.metrics.budget_reservations.labels(outcome="bypassed")._value.get() >= 1
    await stream.close()


async def test_advisory_mode_never_refuses_a_full_school(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"tiny": {"daily_limit_usd": 0.0001, "timezone": "UTC"}},
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy, BUDGET_ENFORCEMENT_MODE="advisory")
    stream = await stream_and_close(server, tone(440, 3.0), jwt=token("tiny", "g"))
    assert [m["status"] for m in stream.of_type("Transcript")] == ["ok"] * 3
    doc = await usage(server, "tiny")
    assert doc["spent_usd"] == pytest.approx(3 * WINDOW_MICRO / 1_000_000)
    assert server.state.metrics.budget_reservations.labels(outcome="exceeded")._value.get() >= 1


async def test_disabled_mode_makes_no_ledger_calls(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(BUDGET_ENFORCEMENT_MODE="disabled")
    assert server.state.redis is None
    stream = await stream_and_close(server, tone(440, 1.0))
    assert stream.of_type("Transcript")[0]["status"] == "ok"
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["checks"]["redis"]["status"] == "disabled"


async def test_a_budget_refusal_after_close_stream_still_ends_4402(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The school's budget runs out on a window still pending when the client sent
    CloseStream: the classroom is told (4402, do not reconnect), not 1000."""
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"one-window": {"daily_limit_usd": WINDOW_MICRO / 1_000_000, "timezone": "UTC"}},
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    server.fake.behaviour.latency_ms = 300  # both windows are pending at CloseStream
    stream = await open_stream(server, token("one-window", "g"))
    await stream.send_audio(tone(440, 2.0))
    messages = await stream.finish()
    await stream.close()
    reasons = [m.get("reason") for m in messages if m["type"] == "Transcript"]
    assert "BUDGET_EXCEEDED" in reasons, messages
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "BUDGET_EXCEEDED"
    assert stream.close_code == 4402
