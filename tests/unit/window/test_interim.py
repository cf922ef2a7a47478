"""The interim decoder: bounded, finals first, skipped (never queued) when busy, metered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from gateway.auth.tokens import Claims
from gateway.budget.ledger import Ledger
from gateway.budget.policy import load_policy
from gateway.budget.scopes import day_in
from gateway.budget.service import BudgetService
from gateway.observability.metrics import Metrics
from gateway.stream.interims import InterimRequest
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult
from gateway.window.interim import BUSY, InterimDecoder
from tests.support.audio import tone
from tests.support.redis_server import RedisServer

POLICY = load_policy(Path("config/budget-policy.dev.json"))
CLAIMS = Claims("t", "student", "s-1", "g-1", None, 2_000_000_000)
REQUEST = InterimRequest(0, 0, 8000, 16000, tone(440, 0.5), "Omar")


class Slow:
    """A transcriber that answers when told to."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.asked: list[TranscriptionRequest] = []

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        self.asked.append(request)
        await self.go.wait()
        return TranscriptionResult(text="Maya has", billed_seconds=0.5)

    async def close(self) -> None:
        pass


def _decoder(transcriber: Slow, *, model: str = "tiny.en", busy: bool = False) -> InterimDecoder:
    budget = BudgetService(POLICY, None, mode="disabled", metrics=Metrics(), lease_seconds=60)
    return InterimDecoder(
        transcriber,
        budget,
        Metrics(),
        model=model,
        max_in_flight=1,
        finals_waiting=lambda: busy,
    )


def _count(decoder: InterimDecoder, outcome: str) -> float:
    metrics = decoder._metrics
    return float(metrics.interims.labels(outcome=outcome)._value.get())


async def test_a_decode_beyond_the_bound_is_skipped_not_queued() -> None:
    slow = Slow()
    decoder = _decoder(slow)
    first = asyncio.create_task(decoder.decode(REQUEST, CLAIMS, None))
    await asyncio.sleep(0)
    assert await decoder.decode(REQUEST, CLAIMS, "en") is BUSY
    slow.go.set()
    assert (await first).text == "Maya has"
    assert len(slow.asked) == 1 and slow.asked[0].prompt == "Omar"
    assert (_count(decoder, "sent"), _count(decoder, "skipped_busy")) == (1, 1)


async def test_finals_first_on_a_shared_model() -> None:
    slow = Slow()
    assert await _decoder(slow, busy=True).decode(REQUEST, CLAIMS, None) is BUSY
    assert slow.asked == []


async def test_an_upstream_failure_is_a_failed_interim() -> None:
    class Failing(Slow):
        async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
            from gateway.errors import ServerError

            raise ServerError("500")

    decoder = _decoder(Failing())
    decoded = await decoder.decode(REQUEST, CLAIMS, None)
    assert decoded.text is None and not decoded.busy and _count(decoder, "failed") == 1
    assert decoder.in_flight == 0


async def test_a_priced_interim_model_is_charged_to_the_school(
    redis_server: RedisServer,
) -> None:
    """A paid interim server is metered: the school's day holds the charge."""
    client = aioredis.Redis.from_url(redis_server.url)
    ledger = Ledger(client)
    budget = BudgetService(POLICY, ledger, mode="strict", metrics=Metrics(), lease_seconds=60)
    slow = Slow()
    slow.go.set()
    decoder = InterimDecoder(slow, budget, Metrics(), model="whisper-1", max_in_flight=1)
    assert (await decoder.decode(REQUEST, CLAIMS, None)).text == "Maya has"
    school = POLICY.school("s-1")
    day = day_in(school.timezone, datetime.now(UTC))
    spent = (await ledger.day("school:s-1", day)).get("spent", 0)
    assert spent == POLICY.pricing.cost_micro("whisper-1", 0.5) > 0
    await client.aclose()


async def test_a_failing_interim_server_is_logged_once_and_its_recovery_once() -> None:
    from structlog.testing import capture_logs

    from gateway.errors import UpstreamConnectionError

    class Flaky(Slow):
        down = True

        async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
            if self.down:
                raise UpstreamConnectionError("refused")
            return TranscriptionResult(text="back", billed_seconds=0.5)

    flaky = Flaky()
    decoder = _decoder(flaky)
    with capture_logs() as logs:
        for _ in range(5):
            await decoder.decode(REQUEST, CLAIMS, None)
        assert decoder.failing == "UpstreamConnectionError"
        flaky.down = False
        await decoder.decode(REQUEST, CLAIMS, None)
    assert [entry["event"] for entry in logs] == ["interim.failing"]  # once, not five times
    assert decoder.failing is None  # recovered (logged at info)
    assert _count(decoder, "failed") == 5 and _count(decoder, "sent") == 1
