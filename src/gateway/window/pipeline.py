"""One window's way, for the stream and the passthrough alike: the caller's school, the
model it may use, the budget hold, the upstream call, the charge.

:meth:`WindowProcessor.process` takes a stream's window (never raises: every
failure is a dropped :class:`Outcome`); :meth:`WindowProcessor.upload` takes
a file posted to ``/v1/audio/transcriptions`` (raises, for the OpenAI-shaped
answer). Both go through :meth:`WindowProcessor.transcribe`: reserve →
transcribe → settle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from gateway.auth.tokens import Claims
from gateway.budget.policy import SchoolBudget
from gateway.budget.pricing import usd
from gateway.budget.service import BudgetService
from gateway.budget.settlement import Charge, Hold
from gateway.errors import BudgetRefused, BudgetUnavailable, LedgerUnavailable, UpstreamError
from gateway.observability import tracing
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream.audio_window import Window
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.saturation import Saturation
from gateway.stream.wav import wav_bytes
from gateway.stt.service import SttService, UpstreamEvents
from gateway.stt.suppression import filter_segments
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult
from gateway.window.charge import billed_school, held

log = get_logger("gateway.budget")

#: Where a stream's window hands its charge, for the session to take with its Transcript.
ChargeLater = Callable[[Charge], None]


class _NoEvents:
    """A request with nobody to tell while it waits (the passthrough answers once)."""

    def rate_limited(self) -> None:
        pass

    def held(self) -> None:
        pass

    def credentials_rejected(self) -> None:
        pass


_NO_EVENTS = _NoEvents()


class WindowProcessor:
    def __init__(
        self,
        service: SttService,
        budget: BudgetService,
        metrics: Metrics,
        saturation: Saturation | None = None,
    ) -> None:
        self.service = service
        self.budget = budget
        self._metrics = metrics
        self._saturation = saturation

    @property
    def window_seconds(self) -> float:
        """The window target now: the service's (longer while Whisper rate-limits), doubled
        (up to ``STT_WINDOW_MAX_SECONDS``) while the process is saturated — fewer upstream
        calls and ledger writes per second of audio, the second thing a saturated process
        gives up after interims."""
        target = self.service.window_seconds
        if self._saturation is not None and self._saturation.saturated:
            return max(target, min(self.service.adaptive.maximum, 2 * target))
        return target

    async def upload(
        self, claims: Claims, request: TranscriptionRequest, *, at_most_seconds: float
    ) -> Outcome:
        """A whole file: the model the school may use now, at most ``at_most_seconds``
        reserved and billed. Raises like :meth:`transcribe`."""
        school = await billed_school(self.budget, claims)
        model = self.budget.model_for(school.school_id, request.model)
        request = replace(request, model=model)
        return await self.transcribe(school, request, _NO_EVENTS, at_most_seconds=at_most_seconds)

    async def process(
        self,
        window: Window,
        model: str,
        *,
        claims: Claims,
        language: str | None,
        prompt: str | None,
        events: UpstreamEvents,
        charge_later: ChargeLater,
    ) -> Outcome:
        """A stream's window, sent to ``model`` (the session chose it when the window
        closed); a refusal or an upstream failure is a dropped outcome. Its charge goes to
        ``charge_later``: the session takes it when it delivers the window's Transcript."""
        try:
            school = await billed_school(self.budget, claims)
        except LedgerUnavailable:
            return Outcome.dropped(DropReason.BUDGET_UNAVAILABLE, model)
        with tracing.span(
            "stt.window",
            {
                "stt.window.seq": window.seq,
                "stt.window.seconds": round(window.duration, 3),
                "stt.model": model,
                "stt.school_id": school.school_id,
            },
        ):
            return await self._process(
                window, model, school, language, prompt, events, charge_later
            )

    async def _process(
        self,
        window: Window,
        model: str,
        school: SchoolBudget,
        language: str | None,
        prompt: str | None,
        events: UpstreamEvents,
        charge_later: ChargeLater,
    ) -> Outcome:
        request = TranscriptionRequest(
            wav=wav_bytes(window.pcm, window.sample_rate),
            model=model,
            duration=window.sent_seconds,
            language=language,
            prompt=prompt or None,
        )
        try:
            return await self.transcribe(school, request, events, charge_later=charge_later)
        except BudgetRefused:
            return Outcome.dropped(DropReason.BUDGET_EXCEEDED, model)
        except BudgetUnavailable:
            return Outcome.dropped(DropReason.BUDGET_UNAVAILABLE, model)
        except UpstreamError as exc:
            return Outcome.dropped(DropReason(exc.drop_reason), model)

    async def transcribe(
        self,
        school: SchoolBudget,
        request: TranscriptionRequest,
        events: UpstreamEvents,
        *,
        at_most_seconds: float | None = None,
        charge_later: ChargeLater | None = None,
    ) -> Outcome:
        """Reserve, transcribe, settle: the one path of a window and of a passthrough request.

        ``at_most_seconds``: reserve that bound and never settle more (an uploaded file,
        whose length the upstream decides); ``charge_later``: hand the charge there rather
        than take it now. Raises :class:`BudgetRefused`,
        :class:`BudgetUnavailable` or :class:`UpstreamError`; a hold whose request fails or
        is cancelled (or times out) is released first."""
        model = request.model
        reserve = request.duration if at_most_seconds is None else at_most_seconds

        async def call() -> TranscriptionResult:
            with tracing.span("stt.upstream", {"stt.model": model}):
                return await self.service.transcribe(request, events)

        hold, result = await held(self.budget, school, model, reserve, call)
        return await self.settle(hold, result, request.duration, at_most_seconds, charge_later)

    async def settle(
        self,
        hold: Hold,
        result: TranscriptionResult,
        duration: float,
        at_most_seconds: float | None = None,
        charge_later: ChargeLater | None = None,
    ) -> Outcome:
        """Commit the billed duration of ``result`` against ``hold`` (never more than
        ``at_most_seconds`` when given: the bound that was reserved), or hand the charge to
        ``charge_later``; the window's outcome."""
        billed = result.billed_seconds if result.billed_seconds is not None else duration
        if at_most_seconds is not None and billed > at_most_seconds:
            log.warning(
                "budget.billed_past_bound",
                school_id=hold.school.school_id,
                billed_seconds=round(billed, 3),
                reserved_seconds=at_most_seconds,
            )
            billed = at_most_seconds
        if charge_later is not None:
            charge = self.budget.charge_for(hold, billed)
            charge_later(charge)
            cost = usd(charge.actual_micro)
        else:
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
