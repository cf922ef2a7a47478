"""The passthrough reserves what will be billed: a lying WAV cannot beat the school's cap.

The upstream here is what ffmpeg-based servers are: it decodes to the end of the
file whatever the header says, and bills for all of it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.auth.tokens import mint
from gateway.errors import BadAudio
from gateway.stream.wav import wav_bytes
from gateway.stt.audio_length import billable_length
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import SECRET, http_json, serving, write_policy

RATE = 16000
CAP_USD = 0.01  # 100 s of whisper-1


def _lying(pcm: bytes, declared: int) -> bytes:
    wav = bytearray(wav_bytes(pcm, RATE))
    struct.pack_into("<I", wav, 40, declared)
    return bytes(wav)


def test_a_wav_is_measured_exactly_and_a_lying_one_refused() -> None:
    pcm = tone(440, 2.0)
    assert billable_length(wav_bytes(pcm, RATE)).seconds == pytest.approx(2.0)
    for declared in (0, 0xFFFFFFFF, 1000, len(pcm) + 2):
        with pytest.raises(BadAudio, match="declares"):
            billable_length(_lying(pcm, declared))
    with pytest.raises(BadAudio):
        billable_length(wav_bytes(pcm, RATE) + b"junk")  # trailing bytes that are no chunk
    listed = wav_bytes(pcm, RATE) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    assert billable_length(listed).seconds == pytest.approx(2.0)


def test_other_formats_are_measured_at_their_lowest_bit_rate() -> None:
    assert billable_length(b"ID3" + bytes(9997)).seconds == pytest.approx(10.0)  # 8 kbit/s
    assert billable_length(b"OggS" + bytes(7496)).seconds == pytest.approx(10.0)  # 6 kbit/s
    assert billable_length(b"\x00" * 750).reserve_seconds == 1.0
    assert billable_length(b"\x00" * 751).reserve_seconds == 2.0


class _ToTheEnd:
    """Bills every byte after a 44-byte header at 16 kHz mono s16, or, for anything that is
    not RIFF, at ``other_bytes_per_second`` (a codec at a bit rate lower than any bound)."""

    def __init__(self, other_bytes_per_second: float) -> None:
        self.other = other_bytes_per_second
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        data = upload.file.read()
        self.requests += 1
        riff = data[:4] == b"RIFF"
        seconds = (len(data) - 44) / (2 * RATE) if riff else len(data) / self.other
        await asyncio.sleep(0.05)  # let the concurrent requests overlap
        return web.json_response(
            {"text": "heard", "usage": {"type": "duration", "seconds": round(seconds, 2)}}
        )


@pytest.fixture
async def to_the_end() -> AsyncIterator[tuple[_ToTheEnd, str]]:
    upstream = _ToTheEnd(other_bytes_per_second=100)
    app = web.Application(client_max_size=30 * 1024 * 1024)
    app.router.add_post("/v1/audio/transcriptions", upstream.handle)
    async with serving(app) as address:
        yield upstream, f"http://{address}/v1"


async def _post(url: str, key: str, data: bytes, name: str) -> int:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        body = await resp.json()
        assert "error" in body or "text" in body
        if resp.status != 200:
            assert set(body["error"]) == {"message", "type", "param", "code"}  # OpenAI's shape
        return resp.status


async def test_twenty_concurrent_lying_uploads_stay_under_the_cap(
    make_gateway: GatewayFactory, tmp_path: Path, to_the_end: tuple[_ToTheEnd, str]
) -> None:
    upstream, upstream_url = to_the_end
    policy = write_policy(
        tmp_path / "p.json",
        downgrade=[],
        schools={"capped": {"daily_limit_usd": CAP_USD, "timezone": "UTC"}},
    )
    server = await make_gateway(
        BUDGET_POLICY_PATH=policy, OPENAI_BASE_URL=upstream_url, STT_PROVIDER="openai"
    )
    key = mint(SECRET, school_id="capped", role="teacher")
    url = f"{server.http}/v1/audio/transcriptions"
    thirty_seconds = tone(440, 30.0)
    lies = [_lying(thirty_seconds, declared) for declared in (0, 0xFFFFFFFF, 3200)] * 7
    statuses = await asyncio.gather(*(_post(url, key, lie, "a.wav") for lie in lies[:20]))
    assert statuses == [400] * 20
    assert upstream.requests == 0
    # 20 KB that this upstream bills as 200 s each: the bound reserved is 27 s a request
    blobs = [bytes([n]) * 20_000 for n in range(20)]
    statuses = await asyncio.gather(*(_post(url, key, blob, "a.ogg") for blob in blobs))
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1
    assert set(statuses) <= {200, 429}
    status, usage = await http_json("GET", f"{server.http}/api/v1/schools/capped/budget/usage", key)
    assert status == 200
    assert 0 < usage["spent_usd"] <= CAP_USD
    assert usage["reserved_usd"] == 0
    # an honest WAV is billed exactly what the upstream reports
    honest = wav_bytes(tone(440, 2.0), RATE)
    before = usage["spent_usd"]
    if before + 0.0002 <= CAP_USD:
        assert await _post(url, key, honest, "b.wav") == 200
        _, usage = await http_json("GET", f"{server.http}/api/v1/schools/capped/budget/usage", key)
        assert usage["spent_usd"] == pytest.approx(before + 0.0002)
