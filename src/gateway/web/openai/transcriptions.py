"""OpenAI-compatible ``POST /v1/audio/transcriptions`` with the gateway's budget and breaker.

Any OpenAI SDK pointed at the gateway (``base_url=http://gateway/v1``, the
gateway JWT as the API key) gets the same budget, circuit breaker and metrics
as streaming. The reservation is made from the bytes, before the call
(:mod:`gateway.stt.audio_length`): a WAV whose header does not describe the
file is refused, other WAVs are measured exactly, other formats at their
lowest bit rate; the upstream's ``usage.seconds`` settles it, never past what
was reserved, so the school's cap holds whatever the upstream reports. Every
answer, failures included, is in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.auth.tokens import Claims
from gateway.errors import (
    BadAudio,
    BodyTimeout,
    BudgetRefused,
    BudgetUnavailable,
    ClientGone,
    InvalidToken,
    TooManyFailures,
    UpstreamError,
)
from gateway.observability.audit import actor
from gateway.observability.logging import get_logger
from gateway.stt.audio_length import Length, billable_length
from gateway.stt.transcriber import TranscriptionRequest
from gateway.web.bodies import body_deadline
from gateway.web.errors import openai_error, openai_error_for
from gateway.web.http_auth import authenticate
from gateway.web.keys import GATEWAY

log = get_logger("gateway.passthrough")


class _Answer(Exception):
    """A request that is answered before it reaches the upstream (with this response)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True, slots=True)
class _Upload:
    data: bytes
    model: str
    response_format: str
    language: str | None
    prompt: str | None
    filename: str
    content_type: str


async def transcriptions(request: web.Request) -> web.Response:
    """The handler: every answer in OpenAI's shape, an unexpected failure included."""
    try:
        return await _transcriptions(request)
    except _Answer as refused:
        return refused.response
    except Exception:
        log.exception("passthrough.failed")
        return openai_error(
            500, "internal error; please retry", code="internal_error", kind="server_error"
        )


async def _transcriptions(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    claims = _caller(request)
    upload = await _upload(request)
    length = _length(upload.data)
    upstream_request = TranscriptionRequest(
        wav=upload.data,
        model=upload.model,
        duration=length.seconds,
        language=upload.language,
        prompt=upload.prompt,
        filename=upload.filename,
        content_type=upload.content_type,
    )
    try:
        async with asyncio.timeout(gateway.settings.STT_REQUEST_TIMEOUT_SECONDS * 2):
            outcome = await gateway.processor.upload(
                claims, upstream_request, at_most_seconds=length.reserve_seconds
            )
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
        school_id=claims.school_id,
        audio_seconds=round(outcome.billed_seconds, 3),
        cost_usd=outcome.cost_usd,
        model=outcome.model,
    )
    if upload.response_format == "text":
        return web.Response(text=outcome.text)
    return web.json_response(
        {"text": outcome.text, "usage": {"type": "duration", "seconds": outcome.billed_seconds}}
    )


def _length(data: bytes) -> Length:
    try:
        return billable_length(data)
    except BadAudio as exc:
        raise _bad(exc.message, "file", "invalid_audio") from None


def _caller(request: web.Request) -> Claims:
    try:
        claims = authenticate(request)
    except (TooManyFailures, InvalidToken) as exc:
        raise _Answer(openai_error_for(exc)) from None
    if claims.school_id is None:
        raise _Answer(openai_error(403, "this token does not name a school", code="FORBIDDEN"))
    return claims


def _bad(message: str, param: str | None = None, code: str = "invalid_request") -> _Answer:
    return _Answer(openai_error(400, message, code=code, param=param))


async def _upload(request: web.Request) -> _Upload:
    """The multipart form, checked as OpenAI's endpoint checks it."""
    gateway = request.app[GATEWAY]
    try:
        async with body_deadline(request):
            form = await request.post()
    except (BodyTimeout, ClientGone) as exc:
        raise _Answer(openai_error_for(exc)) from None
    except web.HTTPRequestEntityTooLarge:
        raise _Answer(
            openai_error(413, "file too large (25 MB at most)", code="file_too_large")
        ) from None
    except (ValueError, HttpProcessingError):
        raise _bad("expected multipart/form-data") from None
    except OSError as exc:  # aiohttp spools large file parts to TMPDIR
        log.error("passthrough.upload_unstored", error=type(exc).__name__)
        raise _Answer(
            openai_error(
                500,
                "the upload could not be stored; please retry",
                code="upload_failed",
                kind="server_error",
            )
        ) from None
    upload: Any = form.get("file")
    if upload is None or not hasattr(upload, "file"):
        raise _bad("file is required", "file")
    data = upload.file.read()
    if not data:
        raise _bad("file is empty", "file")
    requested = str(form.get("model") or gateway.settings.default_model)
    if requested not in gateway.allowed_models:
        allowed = ", ".join(sorted(gateway.allowed_models))
        raise _bad(
            f"model {requested!r} is not allowed here (allowed: {allowed})",
            "model",
            "model_not_allowed",
        )
    response_format = str(form.get("response_format") or "json")
    if response_format not in ("json", "text"):
        raise _bad("response_format must be json or text", "response_format")
    language, prompt = form.get("language"), form.get("prompt")
    return _Upload(
        data=data,
        model=requested,
        response_format=response_format,
        language=str(language) if language else None,
        prompt=str(prompt) if prompt else None,
        filename=getattr(upload, "filename", None) or "audio",
        content_type=getattr(upload, "content_type", None) or "application/octet-stream",
    )
