"""Error mapping at the one boundary, against the loopback simulated Whisper."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.errors import (
    QuotaExhausted,
    RateLimited,
    ServerError,
    UpstreamConnectionError,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.simulated.whisper import HALLUCINATED, LOOPED, FakeWhisper, describe
from gateway.stream.wav import wav_bytes
from gateway.stt.openai_transcriber import OpenAITranscriber, parse_retry_after
from gateway.stt.transcriber import TranscriptionRequest
from tests.audio import tone
from tests.helpers import serving

REQUEST = TranscriptionRequest(
    wav=wav_bytes(tone(880, 0.5), 16000),
    model="whisper-1",
    duration=0.5,
    language="en",
    prompt="before",
)


def _client(fake: FakeWhisper, timeout: float = 5.0) -> OpenAITranscriber:
    return OpenAITranscriber(api_key="k", base_url=fake.url, timeout=timeout)  # type: ignore[attr-defined]


async def test_ok_with_usage(fake_whisper: FakeWhisper) -> None:
    client = _client(fake_whisper)
    result = await client.transcribe(REQUEST)
    assert result.text == "[simulated] tone 880 Hz 0.50 s"
    assert result.billed_seconds == pytest.approx(0.5)
    assert fake_whisper.received[0].prompt == "before"
    await client.close()


async def test_whisper_models_are_asked_for_segments(fake_whisper: FakeWhisper) -> None:
    fake_whisper.behaviour.hallucinate = True
    client = _client(fake_whisper)
    result = await client.transcribe(REQUEST)
    assert fake_whisper.received[-1].response_format == "verbose_json"
    assert [s.text.strip() for s in result.segments] == [
        "[simulated] tone 880 Hz 0.50 s",
        HALLUCINATED,
        LOOPED,
    ]
    assert result.segments[1].no_speech_prob > 0.6 and result.segments[2].compression_ratio > 2.4
    assert result.billed_seconds == pytest.approx(0.5)
    other = replace(REQUEST, model="gpt-4o-mini-transcribe")
    plain = await client.transcribe(other)
    assert fake_whisper.received[-1].response_format == "json" and plain.segments == ()
    await client.close()


async def test_a_segment_without_text_is_a_malformed_answer(fake_whisper: FakeWhisper) -> None:
    """An answer that breaks the segment shape is the upstream's fault, never a crash."""
    from aiohttp import web

    async def broken(_request: web.Request) -> web.Response:
        return web.json_response(
            {"text": "x", "language": "english", "duration": 1.0, "segments": [{"id": 0}]}
        )

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", broken)
    async with serving(app) as address:
        client = OpenAITranscriber(api_key="k", base_url=f"http://{address}/v1", timeout=5)
        with pytest.raises(ServerError):
            await client.transcribe(REQUEST)
        await client.close()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("429", RateLimited),
        ("quota", QuotaExhausted),
        ("500", ServerError),
        ("garbage", ServerError),
        ("reject", UpstreamRejected),
    ],
)
async def test_error_mapping(fake_whisper: FakeWhisper, mode: str, error: type) -> None:
    fake_whisper.behaviour.mode = mode
    fake_whisper.behaviour.retry_after = 7
    client = _client(fake_whisper)
    with pytest.raises(error) as info:
        await client.transcribe(REQUEST)
    if mode == "429":
        assert info.value.retry_after == 7
    await client.close()


async def test_timeout(fake_whisper: FakeWhisper) -> None:
    fake_whisper.behaviour.latency_ms = 2000
    client = _client(fake_whisper, timeout=0.2)
    with pytest.raises(UpstreamTimeout):
        await client.transcribe(REQUEST)
    await client.close()


async def test_connection_refused() -> None:
    client = OpenAITranscriber(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(UpstreamConnectionError):
        await client.transcribe(REQUEST)
    await client.close()


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=now) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_simulated_text_is_derived_from_the_audio() -> None:
    text, duration = describe(wav_bytes(tone(330, 2.0), 16000))
    assert text == "[simulated] tone 330 Hz 2.00 s" and duration == 2.0
    assert describe(wav_bytes(bytes(3200), 16000))[0] == ""
