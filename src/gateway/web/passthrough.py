"""OpenAI-compatible ``POST /v1/audio/transcriptions`` with the gateway's budget and breaker.

Any OpenAI SDK pointed at the gateway (``base_url=http://gateway/v1``, the
gateway JWT as the API key) gets the same budget, circuit breaker and metrics
as streaming. The reservation needs the audio's duration before the call: WAV
files are measured exactly; other containers are estimated at 32 kbit/s
(conservative for speech codecs) and settled with the upstream's
``usage.seconds`` when it reports it.
"""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import (
    BudgetRefused,
    BudgetUnavailable,
    InvalidToken,
    TooManyFailures,
    UpstreamError,
)
from gateway.observability.audit import actor
from gateway.stt.transcriber import TranscriptionRequest
from gateway.web.errors import openai_error, openai_error_for
from gateway.web.http_auth import authenticate
from gateway.web.state import GATEWAY

ESTIMATE_BYTES_PER_SECOND = 4000


class _NoEvents:
    def rate_limited(self) -> None:
        pass

    def credentials_rejected(self) -> None:
        pass

    def held(self) -> None:
        pass


def audio_seconds(data: bytes) -> tuple[float, bool]:
    """Duration of ``data``, and whether it is exact (WAV) or estimated."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate(), True
    except (wave.Error, EOFError, ZeroDivisionError):
        return max(0.1, len(data) / ESTIMATE_BYTES_PER_SECOND), False


async def transcriptions(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    try:
        claims = authenticate(request)
    except (TooManyFailures, InvalidToken) as exc:
        return openai_error_for(exc)
    if claims.school_id is None:
        return openai_error(403, "this token does not name a school", code="FORBIDDEN")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return openai_error(413, "file too large (25 MB at most)", code="file_too_large")
    except (ValueError, HttpProcessingError):
        return openai_error(400, "expected multipart/form-data", code="invalid_request")
    upload: Any = form.get("file")
    if upload is None or not hasattr(upload, "file"):
        return openai_error(400, "file is required", code="invalid_request", param="file")
    data = upload.file.read()
    if not data:
        return openai_error(400, "file is empty", code="invalid_request", param="file")
    requested = str(form.get("model") or gateway.settings.default_model)
    if requested not in gateway.allowed_models:
        return openai_error(
            400, f"model {requested!r} is not allowed", code="model_not_allowed", param="model"
        )
    response_format = str(form.get("response_format") or "json")
    if response_format not in ("json", "text"):
        return openai_error(
            400,
            "response_format must be json or text",
            code="invalid_request",
            param="response_format",
        )
    budget = gateway.budget
    school = await budget.school(claims.school_id, claims.district_id)
    model = budget.model_for(school.school_id, requested)
    seconds, _exact = audio_seconds(data)
    assert gateway.processor is not None
    language = form.get("language")
    prompt = form.get("prompt")
    upstream_request = TranscriptionRequest(
        wav=data,
        model=model,
        duration=seconds,
        language=str(language) if language else None,
        prompt=str(prompt) if prompt else None,
        filename=getattr(upload, "filename", None) or "audio",
        content_type=getattr(upload, "content_type", None) or "application/octet-stream",
    )
    try:
        async with asyncio.timeout(gateway.settings.STT_REQUEST_TIMEOUT_SECONDS * 2):
            outcome = await gateway.processor.transcribe(school, upstream_request, _NoEvents())
    except BudgetRefused as exc:
        gateway.metrics.windows_dropped.labels(reason="BUDGET_EXCEEDED").inc()
        return openai_error_for(exc)
    except (BudgetUnavailable, UpstreamError) as exc:
        return openai_error_for(exc)
    except TimeoutError:
        return openai_error(
            503,
            "the transcription service is unavailable",
            code="STT_UNAVAILABLE",
            kind="server_error",
        )
    gateway.metrics.windows.labels(status="ok").inc()
    gateway.audit.record(
        "transcription.passthrough",
        who=actor(claims.sub, claims.role),
        school_id=school.school_id,
        audio_seconds=round(outcome.billed_seconds, 3),
        cost_usd=outcome.cost_usd,
        model=model,
    )
    if response_format == "text":
        return web.Response(text=outcome.text)
    return web.json_response(
        {"text": outcome.text, "usage": {"type": "duration", "seconds": outcome.billed_seconds}}
    )
