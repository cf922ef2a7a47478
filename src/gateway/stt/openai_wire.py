"""The OpenAI ``/audio/transcriptions`` wire format, as pure functions.

What an answer means — its status, ``Retry-After`` / ``retry-after-ms``
headers and error body mapped onto :mod:`gateway.errors`, and a JSON answer
read into a :class:`TranscriptionResult` — decided once, for every client of
the wire (:mod:`gateway.stt.aiohttp_transcriber`, :mod:`gateway.stt.openai_transcriber`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.errors import (
    QuotaExhausted,
    RateLimited,
    ServerError,
    UpstreamAuthRejected,
    UpstreamError,
    UpstreamRejected,
)
from gateway.stt.transcriber import Segment, TranscriptionResult


def wants_segments(model: str) -> bool:
    """Whisper models answer ``verbose_json`` with per-segment confidence; others (the
    ``gpt-4o-*-transcribe`` family) only plain JSON."""
    return "whisper" in model.lower()


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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` when given (OpenAI's finer header), else ``Retry-After``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value / 1000)
    return parse_retry_after(headers.get("retry-after"))


def error_code(body: Any) -> str | None:
    """``error.code`` (or ``error.type``) of an OpenAI error body, if it has one."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return str(code) if code else None
    return None


def error_for_status(status: int, headers: Mapping[str, str], body: Any) -> UpstreamError:
    """The gateway error an unsuccessful answer stands for."""
    wait = retry_after(headers)
    if status == 429:
        if error_code(body) == "insufficient_quota":
            return QuotaExhausted("upstream quota exhausted")
        return RateLimited("upstream rate limited", retry_after=wait)
    if status >= 500 or status in (408, 409):
        return ServerError(f"upstream answered {status}", retry_after=wait)
    if status in (401, 403):
        return UpstreamAuthRejected(
            f"upstream refused the API key ({status}); check OPENAI_API_KEY"
        )
    return UpstreamRejected(f"upstream rejected the request ({status})")


def read_answer(payload: Any, *, verbose: bool) -> TranscriptionResult:
    """A successful answer's text, billed seconds and (``verbose_json``) segments."""
    if not isinstance(payload, dict):
        raise ServerError("malformed upstream answer: not an object")
    text = payload.get("text")
    if not isinstance(text, str):
        raise ServerError("malformed upstream answer: no text")
    return TranscriptionResult(
        text=text.strip(),
        billed_seconds=_usage_seconds(payload.get("usage")),
        segments=_segments(payload.get("segments")) if verbose else (),
    )


def _segments(raw: Any) -> tuple[Segment, ...]:
    """The answer's segments; a segment missing a confidence field is kept as heard."""
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise ServerError("malformed upstream answer: segments is not a list")
    out = []
    for seg in raw:
        text = seg.get("text") if isinstance(seg, dict) else None
        if not isinstance(text, str):
            raise ServerError("malformed upstream answer: a segment without text")
        out.append(
            Segment(
                start=_number(seg, "start"),
                end=_number(seg, "end"),
                text=text,
                no_speech_prob=_number(seg, "no_speech_prob"),
                avg_logprob=_number(seg, "avg_logprob"),
                compression_ratio=_number(seg, "compression_ratio"),
            )
        )
    return tuple(out)


def _number(segment: dict[str, Any], name: str) -> float:
    value = segment.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def _usage_seconds(usage: Any) -> float | None:
    seconds = usage.get("seconds") if isinstance(usage, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return None
