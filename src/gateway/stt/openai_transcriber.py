"""Transcriber over the official ``openai`` async client.

All vendor exceptions are translated into :mod:`gateway.errors` in one place,
:func:`map_openai_errors`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import openai

from gateway.errors import (
    QuotaExhausted,
    RateLimited,
    ServerError,
    UpstreamAuthRejected,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def _error_code(exc: openai.APIStatusError) -> str | None:
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return str(code) if code else None
    return None


@contextmanager
def map_openai_errors() -> Iterator[None]:
    """Translate openai / transport exceptions into gateway ``UpstreamError`` leaves."""
    try:
        yield
    except UpstreamError:
        raise
    except openai.APITimeoutError as exc:
        raise UpstreamTimeout("upstream timed out") from exc
    except openai.APIConnectionError as exc:
        raise UpstreamConnectionError("upstream unreachable") from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        retry_after = _retry_after(exc)
        if status == 429:
            if _error_code(exc) == "insufficient_quota":
                raise QuotaExhausted("upstream quota exhausted") from exc
            raise RateLimited("upstream rate limited", retry_after=retry_after) from exc
        if status >= 500:
            raise ServerError(f"upstream answered {status}", retry_after=retry_after) from exc
        if status in (408, 409):
            raise ServerError(f"upstream answered {status}", retry_after=retry_after) from exc
        if status in (401, 403):
            raise UpstreamAuthRejected(
                f"upstream refused the API key ({status}); check OPENAI_API_KEY"
            ) from exc
        raise UpstreamRejected(f"upstream rejected the request ({status})") from exc
    except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, KeyError) as exc:
        raise ServerError("malformed upstream answer") from exc
    except openai.OpenAIError as exc:
        raise ServerError(f"upstream error: {type(exc).__name__}") from exc


class OpenAITranscriber:
    """Sends one WAV per call to ``/audio/transcriptions``."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        kwargs: dict[str, Any] = {}
        if request.language:
            kwargs["language"] = request.language
        if request.prompt:
            kwargs["prompt"] = request.prompt
        with map_openai_errors():
            response = await self._client.audio.transcriptions.create(
                file=(request.filename, request.wav, request.content_type),
                model=request.model,
                response_format="json",
                **kwargs,
            )
            text = response.text if hasattr(response, "text") else None
            if not isinstance(text, str):
                raise ServerError("malformed upstream answer: no text")
            return TranscriptionResult(text=text.strip(), billed_seconds=_usage_seconds(response))

    async def close(self) -> None:
        await self._client.close()


def _usage_seconds(response: Any) -> float | None:
    usage = getattr(response, "usage", None)
    seconds = getattr(usage, "seconds", None) if usage is not None else None
    if isinstance(seconds, int | float) and seconds >= 0:
        return float(seconds)
    return None
