"""An open window's live words: the interim transcriber, bounded, finals first, metered.

One decode of ``tiny.en`` costs about as much CPU whatever the audio's length
(Whisper pads to 30 s), so interims are the first thing a busy process gives
up: at most ``max_in_flight`` decodes run at once in the process, none starts
while the local model has a window's final decode waiting or running (finals
first), and a decode that cannot start now is *skipped*, never queued. A
priced interim model is reserved and charged like a window, so a paid interim
server can never overspend a school; an unpriced one (0: on-premise compute)
makes no ledger call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.auth.tokens import Claims
from gateway.budget.service import BudgetService
from gateway.errors import BudgetError, LedgerUnavailable, UpstreamError
from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream.interims import InterimRequest
from gateway.stream.saturation import Saturation
from gateway.stream.wav import wav_bytes
from gateway.stt.transcriber import Transcriber, TranscriptionRequest
from gateway.window.charge import billed_school, held

log = get_logger("gateway.interim")


@dataclass(frozen=True, slots=True)
class Decoded:
    """What became of an interim decode: its text, or why there is none."""

    text: str | None
    busy: bool = False


BUSY = Decoded(None, busy=True)
FAILED = Decoded(None)


class InterimDecoder:
    def __init__(
        self,
        transcriber: Transcriber,
        budget: BudgetService,
        metrics: Metrics,
        *,
        model: str,
        max_in_flight: int,
        finals_waiting: Callable[[], bool] = lambda: False,
        saturation: Saturation | None = None,
    ) -> None:
        """``finals_waiting``: whether the shared local model is busy with windows;
        ``saturation``: the process's (a saturated process skips every interim)."""
        self.transcriber = transcriber
        self.model = model
        self._budget = budget
        self._metrics = metrics
        self._max = max_in_flight
        self._finals_waiting = finals_waiting
        self._saturation = saturation
        self.in_flight = 0
        #: The error of the current run of failures (logged once, and its end once).
        self.failing: str | None = None

    async def decode(
        self, request: InterimRequest, claims: Claims, language: str | None
    ) -> Decoded:
        saturated = self._saturation is not None and self._saturation.saturated
        if saturated or self.in_flight >= self._max or self._finals_waiting():
            self._metrics.interims.labels(outcome="skipped_busy").inc()
            return BUSY
        self.in_flight += 1
        started = time.perf_counter()
        try:
            text = await self._metered(request, claims, language)
        except (BudgetError, LedgerUnavailable, UpstreamError) as exc:
            self._metrics.interims.labels(outcome="failed").inc()
            if type(exc).__name__ != self.failing:  # once per kind of failure, not per decode
                self.failing = type(exc).__name__
                log.warning("interim.failing", error=self.failing)
            return FAILED
        finally:
            self.in_flight -= 1
        if self.failing is not None:
            log.info("interim.recovered", error=self.failing)
            self.failing = None
        self._metrics.interims.labels(outcome="sent").inc()
        self._metrics.interim_duration.observe(time.perf_counter() - started)
        return Decoded(text)

    async def _metered(self, request: InterimRequest, claims: Claims, language: str | None) -> str:
        upstream = TranscriptionRequest(
            wav=wav_bytes(request.pcm, request.sample_rate),
            model=self.model,
            duration=request.seconds,
            language=language,
            prompt=request.prompt or None,
            quick=True,
        )
        if not self._budget.policy.pricing.cost_micro(self.model, request.seconds):
            return (await self.transcriber.transcribe(upstream)).text
        school = await billed_school(self._budget, claims)
        hold, result = await held(
            self._budget, school, self.model, request.seconds,
            lambda: self.transcriber.transcribe(upstream),
        )  # fmt: skip
        billed = min(result.billed_seconds or request.seconds, request.seconds)
        cost_micro = await self._budget.commit(hold, billed)
        self._metrics.cost_usd.labels(model=self.model).inc(cost_micro / 1_000_000)
        return result.text
