"""An OpenAI SDK client pointed at the gateway's passthrough."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest

from gateway.auth.tokens import mint
from gateway.stream.wav import wav_bytes
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import SECRET, http_json, write_policy


async def test_openai_sdk_is_transcribed_then_refused_over_budget(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "p.json",
        downgrade=[],
        schools={"sdk": {"daily_limit_usd": 0.0005, "timezone": "UTC"}},
    )  # 5 s of whisper-1
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    key = mint(SECRET, school_id="sdk", group_id="api", role="teacher")
    client = openai.AsyncOpenAI(api_key=key, base_url=f"{server.http}/v1", max_retries=0)
    audio = ("lesson.wav", io.BytesIO(wav_bytes(tone(660, 3.0), 16000)), "audio/wav")
    result = await client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert result.text == "[simulated] tone 660 Hz 3.00 s"
    text = await client.audio.transcriptions.create(
        model="whisper-1",
        response_format="text",
        file=("b.wav", wav_bytes(tone(220, 1.0), 16000), "audio/wav"),
    )
    assert "220 Hz" in str(text)
    with pytest.raises(openai.RateLimitError) as info:
        await client.audio.transcriptions.create(
            model="whisper-1", file=("c.wav", wav_bytes(tone(440, 3.0), 16000), "audio/wav")
        )
    assert info.value.status_code == 429
    assert info.value.body["code"] == "BUDGET_EXCEEDED"  # type: ignore[index]
    status, usage = await http_json("GET", f"{server.http}/api/v1/schools/sdk/budget/usage", key)
    assert status == 200
    assert usage["spent_usd"] == 0.0004 and usage["status"] == "exceeded"
    metrics = server.state.metrics
    assert metrics.upstream_requests.labels(model="whisper-1", outcome="ok")._value.get() == 2
    await client.close()


async def test_passthrough_rejects_bad_requests(make_gateway: GatewayFactory) -> None:
    server = await make_gateway()
    client = openai.AsyncOpenAI(api_key="not-a-jwt", base_url=f"{server.http}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", wav_bytes(tone(440, 1.0), 16000), "audio/wav")
        )
    good = openai.AsyncOpenAI(
        api_key=mint(SECRET, school_id="s-1", role="teacher"),
        base_url=f"{server.http}/v1",
        max_retries=0,
    )
    with pytest.raises(openai.BadRequestError) as info:
        await good.audio.transcriptions.create(
            model="not-allowed", file=("a.wav", wav_bytes(tone(440, 1.0), 16000), "audio/wav")
        )
    assert info.value.body["code"] == "model_not_allowed"  # type: ignore[index]
    assert "allowed: " in info.value.body["message"] and "whisper-1" in str(info.value.body)  # type: ignore[index]
    server.fake.behaviour.mode = "quota"
    with pytest.raises(openai.RateLimitError) as quota:
        await good.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", wav_bytes(tone(440, 1.0), 16000), "audio/wav")
        )
    assert quota.value.body["code"] == "UPSTREAM_QUOTA"  # type: ignore[index]
    status, usage = await http_json(
        "GET",
        f"{server.http}/api/v1/schools/s-1/budget/usage",
        mint(SECRET, school_id="s-1", role="teacher"),
    )
    assert status == 200
    assert usage["spent_usd"] == 0 and usage["reserved_usd"] == 0  # released, not charged
    await client.close()
    await good.close()
