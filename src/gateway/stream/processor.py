"""Turns one window into an outcome: budget hold, WAV, upstream call, commit."""

from __future__ import annotations

import asyncio

from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.budget.service import BudgetRefused, BudgetService, BudgetUnavailable, Hold
from gateway.errors import UpstreamError
from gateway.observability import tracing
from gateway.observability.metrics import Metrics
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.wav import wav_bytes
from gateway.stream.windowing import Window
from gateway.stt.service import SttService, UpstreamEvents
from gateway.stt.suppression import filter_segments
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult


class WindowProcessor:
    def __init__(self, service: SttService, budget: BudgetService, metrics: Metrics) -> None:
        self.service = service
        self.budget = budget
        self._metrics = metrics

    async def process(
        self,
        window: Window,
        model: str,
        *,
        school: SchoolBudget,
        language: str | None,
        prompt: str | None,
        events: UpstreamEvents,
    ) -> Outcome:
        with tracing.span(
            "stt.window",
            {
                "stt.window.seq": window.seq,
                "stt.window.seconds": round(window.duration, 3),
                "stt.model": model,
                "stt.school_id": school.school_id,
            },
        ):
            return await self._process(window, model, school, language, prompt, events)

    async def _process(
        self,
        window: Window,
        model: str,
        school: SchoolBudget,
        language: str | None,
        prompt: str | None,
        events: UpstreamEvents,
    ) -> Outcome:
        try:
            with tracing.span("budget.reserve"):
                hold = await self.budget.reserve(school, model, window.sent_seconds)
        except BudgetRefused:
            return Outcome.dropped(DropReason.BUDGET_EXCEEDED, model)
        except BudgetUnavailable:
            return Outcome.dropped(DropReason.BUDGET_UNAVAILABLE, model)
        request = TranscriptionRequest(
            wav=wav_bytes(window.pcm, window.sample_rate),
            model=model,
            duration=window.sent_seconds,
            language=language,
            prompt=prompt or None,
        )
        try:
            with tracing.span("stt.upstream", {"stt.model": model}):
                result = await self.service.transcribe(request, events)
        except UpstreamError as exc:
            await self.budget.release(hold)
            return Outcome.dropped(DropReason(exc.drop_reason), model)
        except asyncio.CancelledError:
            await asyncio.shield(self.budget.release(hold))
            raise
        return await self.settle(hold, result, window.sent_seconds)

    async def settle(self, hold: Hold, result: TranscriptionResult, duration: float) -> Outcome:
        """Commit the billed duration of ``result`` against ``hold``; the window's outcome."""
        billed = result.billed_seconds if result.billed_seconds is not None else duration
        with tracing.span("budget.commit"):
            cost = usd(await self.budget.commit(hold, billed))
        self._metrics.audio_billed.labels(model=hold.model).inc(billed)
        self._metrics.cost_usd.labels(model=hold.model).inc(cost)
        text = result.text
        if result.segments:  # the upstream said which parts it did not really hear
            filtered = filter_segments(result.segments)
            for reason in filtered.suppressed:
                self._metrics.segments_suppressed.labels(reason=reason).inc()
            text = filtered.text
        return Outcome(
            status="ok", model=hold.model, text=text, billed_seconds=billed, cost_usd=cost
        )
