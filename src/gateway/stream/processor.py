"""Turns one pending window into an outcome: WAV, upstream call, cost."""

from __future__ import annotations

from gateway.budget.pricing import Pricing, usd
from gateway.errors import UpstreamError
from gateway.observability.metrics import Metrics
from gateway.stream.pipeline import Outcome, PendingWindow
from gateway.stream.wav import wav_bytes
from gateway.stt.service import SttService, UpstreamEvents
from gateway.stt.transcriber import TranscriptionRequest


class WindowProcessor:
    def __init__(self, service: SttService, pricing: Pricing, metrics: Metrics) -> None:
        self.service = service
        self.pricing = pricing
        self._metrics = metrics

    async def process(
        self,
        pending: PendingWindow,
        *,
        language: str | None,
        prompt: str | None,
        events: UpstreamEvents,
    ) -> Outcome:
        window = pending.window
        model = pending.model
        request = TranscriptionRequest(
            wav=wav_bytes(window.pcm, window.sample_rate),
            model=model,
            duration=window.duration,
            language=language,
            prompt=prompt or None,
        )
        try:
            result = await self.service.transcribe(request, events)
        except UpstreamError as exc:
            return Outcome.dropped(exc.drop_reason, model)
        billed = result.billed_seconds if result.billed_seconds is not None else window.duration
        cost = usd(self.pricing.cost_micro(model, billed))
        self._metrics.audio_billed.labels(model=model).inc(billed)
        self._metrics.cost_usd.labels(model=model).inc(cost)
        return Outcome(
            status="ok", model=model, text=result.text, billed_seconds=billed, cost_usd=cost
        )
