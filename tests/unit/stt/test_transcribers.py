"""Both OpenAI-wire clients, the lean one over aiohttp and the official SDK, against the
same loopback fakes: the same answers and the same errors, case by case."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.errors import (
    QuotaExhausted,
    RateLimited,
    ServerError,
    UpstreamAuthRejected,
    UpstreamConnectionError,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.simulated.whisper import HALLUCINATED, LOOPED, FakeWhisper, describe
from gateway.stream.wav import wav_bytes
from gateway.stt.aiohttp_transcriber import AiohttpTranscriber
from gateway.stt.openai_transcriber import OpenAITranscriber
from gateway.stt.openai_wire import parse_retry_after, read_answer, retry_after
from gateway.stt.transcriber import Transcriber, TranscriptionRequest
from tests.support.audio import tone
from tests.support.helpers import serving

REQUEST = TranscriptionRequest(
    wav=wav_bytes(tone(880, 0.5), 16000),
    model="whisper-1",
    duration=0.5,
    language="en",
    prompt="before",
)


CLIENTS = {"aiohttp": AiohttpTranscriber, "openai-sdk": OpenAITranscriber}


@pytest.fixture(params=sorted(CLIENTS))
def kind(request: pytest.FixtureRequest) -> type[AiohttpTranscriber | OpenAITranscriber]:
    return CLIENTS[request.param]


def _client(
    kind: type[AiohttpTranscriber | OpenAITranscriber], fake: FakeWhisper, timeout: float = 5.0
) -> Transcriber:
    return kind(api_key="k", base_url=fake.url, timeout=timeout)  # type: ignore[attr-defined]


async def test_ok_with_usage(kind: type, fake_whisper: FakeWhisper) -> None:
    client = _client(kind, fake_whisper)
    result = await client.transcribe(REQUEST)
    assert result.text == "[simulated] tone 880 Hz 0.50 s"
    assert result.billed_seconds == pytest.approx(0.5)
    assert fake_whisper.received[0].prompt == "before"
    await client.close()


async def test_whisper_models_are_asked_for_segments(kind: type, fake_whisper: FakeWhisper) -> None:
    fake_whisper.behaviour.hallucinate = True
    client = _client(kind, fake_whisper)
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


async def test_a_segment_without_text_is_a_malformed_answer(kind: type) -> None:
    """An answer that breaks the segment shape is the upstream's fault, never a crash."""
    from aiohttp import web

    async def broken(_request: web.Request) -> web.Response:
        return web.json_response(
            {"text": "x", "language": "english", "duration": 1.0, "segments": [{"id": 0}]}
        )

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", broken)
    async with serving(app) as address:
        client = kind(api_key="k", base_url=f"http://{address}/v1", timeout=5)
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
        ("notext", ServerError),
        ("reject", UpstreamRejected),
        ("unauthorized", UpstreamAuthRejected),
    ],
)
async def test_error_mapping(kind: type, fake_whisper: FakeWhisper, mode: str, error: type) -> None:
    fake_whisper.behaviour.mode = mode
    fake_whisper.behaviour.retry_after = 7
    client = _client(kind, fake_whisper)
    with pytest.raises(error) as info:
        await client.transcribe(REQUEST)
    assert type(info.value) is error
    assert info.value.retry_after == (7 if mode == "429" else None)
    await client.close()


@pytest.mark.parametrize(("mode", "error"), [("429", RateLimited), ("500", ServerError)])
async def test_retry_after_ms_wins_over_retry_after(
    kind: type, fake_whisper: FakeWhisper, mode: str, error: type
) -> None:
    fake_whisper.behaviour.update({"mode": mode, "retry_after": 7, "retry_after_ms": 250})
    client = _client(kind, fake_whisper)
    with pytest.raises(error) as info:
        await client.transcribe(REQUEST)
    assert info.value.retry_after == pytest.approx(0.25)
    await client.close()


async def test_timeout(kind: type, fake_whisper: FakeWhisper) -> None:
    fake_whisper.behaviour.latency_ms = 2000
    client = _client(kind, fake_whisper, timeout=0.2)
    with pytest.raises(UpstreamTimeout):
        await client.transcribe(REQUEST)
    await client.close()


async def test_a_connection_cut_mid_answer_is_a_connection_error(kind: type) -> None:
    """The upstream closes the socket after the headers: unreachable, never a crash."""

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b'Content-Length: 500\r\n\r\n{"text": "hal')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = kind(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    try:
        with pytest.raises(UpstreamConnectionError):
            await client.transcribe(REQUEST)
    finally:
        await client.close()
        server.close()


async def test_connection_refused(kind: type) -> None:
    client = kind(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(UpstreamConnectionError):
        await client.transcribe(REQUEST)
    await client.close()


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=now) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after-ms": "nan", "retry-after": "9"}) == 9
    assert retry_after({"retry-after-ms": "x"}) is None


def test_answers_are_read_strictly() -> None:
    """Text must be a string; bad numbers in a segment read as 0; usage only when sane."""
    ok = read_answer({"text": " hi ", "usage": {"seconds": 2}}, verbose=False)
    assert ok.text == "hi" and ok.billed_seconds == 2.0 and ok.segments == ()
    assert (
        read_answer({"text": "x", "usage": {"seconds": -1}}, verbose=False).billed_seconds is None
    )
    assert (
        read_answer({"text": "x", "usage": {"seconds": True}}, verbose=False).billed_seconds is None
    )
    seg = {"text": "a", "start": "0", "end": float("inf"), "no_speech_prob": 0.5}
    [parsed] = read_answer({"text": "a", "segments": [seg]}, verbose=True).segments
    assert (parsed.start, parsed.end, parsed.no_speech_prob) == (0.0, 0.0, 0.5)
    for bad in (
        [],
        {"text": 3},
        {"text": "a", "segments": {"x": 1}},
        {"text": "a", "segments": [3]},
    ):
        with pytest.raises(ServerError):
            read_answer(bad, verbose=True)


def test_simulated_text_is_derived_from_the_audio() -> None:
    text, duration = describe(wav_bytes(tone(330, 2.0), 16000))
    assert text == "[simulated] tone 330 Hz 2.00 s" and duration == 2.0
    assert describe(wav_bytes(bytes(3200), 16000))[0] == ""
