"""Transcriber over the official ``openai`` async client.

All vendor exceptions are translated into :mod:`gateway.errors` in one place,
:func:`map_openai_errors`.
"""

from __future__ import annotations

import json
import math
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
from gateway.stt.transcriber import Segment, TranscriptionRequest, TranscriptionResult


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


def wants_segments(model: str) -> bool:
    """Whisper models answer ``verbose_json`` with per-segment confidence; others (the
    ``gpt-4o-*-transcribe`` family) only plain JSON."""
    return "whisper" in model.lower()


class OpenAITranscriber:
    """Sends one WAV per call to ``/audio/transcriptions``.

    Whisper models are asked for ``verbose_json``: its segments say which parts
    Whisper itself did not believe were speech (see :mod:`gateway.stt.suppression`).
    """

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
        verbose = wants_segments(request.model)
        with map_openai_errors():
            response = await self._client.audio.transcriptions.create(
                file=(request.filename, request.wav, request.content_type),
                model=request.model,
                response_format="verbose_json" if verbose else "json",
                **kwargs,
            )
            text = response.text if hasattr(response, "text") else None
            if not isinstance(text, str):
                raise ServerError("malformed upstream answer: no text")
            return TranscriptionResult(
                text=text.strip(),
                billed_seconds=_usage_seconds(response),
                segments=_segments(response) if verbose else (),
            )

    async def close(self) -> None:
        await self._client.close()


def _segments(response: Any) -> tuple[Segment, ...]:
    """The answer's segments; a segment missing a confidence field is kept as heard."""
    raw = getattr(response, "segments", None) or ()
    out = []
    for seg in raw:
        text = getattr(seg, "text", None)
        if not isinstance(text, str):
            raise ServerError("malformed upstream answer: a segment without text")
        out.append(
            Segment(
                start=_number(seg, "start", 0.0),
                end=_number(seg, "end", 0.0),
                text=text,
                no_speech_prob=_number(seg, "no_speech_prob", 0.0),
                avg_logprob=_number(seg, "avg_logprob", 0.0),
                compression_ratio=_number(seg, "compression_ratio", 0.0),
            )
        )
    return tuple(out)


def _number(segment: Any, name: str, default: float) -> float:
    value = getattr(segment, name, None)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return default


def _usage_seconds(response: Any) -> float | None:
    usage = getattr(response, "usage", None)
    seconds = getattr(usage, "seconds", None) if usage is not None else None
    if isinstance(seconds, int | float) and seconds >= 0:
        return float(seconds)
    return None
