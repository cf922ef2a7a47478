"""Streaming protocol v1: query parameters, control messages and server messages (pure).

Names and fields are those of docs/Protocol.md, exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.auth.tokens import Claims
from gateway.errors import BadConfig, StreamError
from gateway.keyterms import query_terms

CONTROL_TYPES = ("KeepAlive", "Finalize", "CloseStream")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_KNOWN_PARAMS = frozenset(
    {
        "encoding",
        "resume",
        "last_seq",
        "sample_rate",
        "channels",
        "language",
        "model",
        "keyterm",
        "access_token",
        "interim_results",
    }
)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    encoding: str
    sample_rate: int
    channels: int
    language: str | None
    model: str
    #: The ``keyterm`` parameters (the token's own terms are added by the session).
    keyterms: tuple[str, ...] = ()
    #: ``interim_results=true``: the client asked for ``Interim`` messages.
    interim_results: bool = False


def parse_query(
    query: Mapping[str, str],
    *,
    default_model: str,
    allowed_models: Collection[str],
    keyterms: Sequence[str] = (),
) -> StreamConfig:
    """Validate the connect query; raise :class:`BadConfig` naming the parameter.

    ``keyterms`` are the values of the repeatable ``keyterm`` parameter."""
    unknown = sorted(set(query) - _KNOWN_PARAMS)
    if unknown:
        raise BadConfig(f"unknown query parameter: {unknown[0]}")
    encoding = query.get("encoding", "pcm_s16le")
    if encoding != "pcm_s16le":
        raise BadConfig("encoding: only pcm_s16le is supported")
    sample_rate = _int(query, "sample_rate", 16000)
    if not 8000 <= sample_rate <= 48000:
        raise BadConfig("sample_rate: must be between 8000 and 48000")
    channels = _int(query, "channels", 1)
    if channels != 1:
        raise BadConfig("channels: only 1 is supported")
    language = query.get("language") or None
    if language is not None and not _LANGUAGE.match(language):
        raise BadConfig("language: must be an ISO-639-1 code such as en or es")
    model = query.get("model") or default_model
    if model not in allowed_models:
        raise BadConfig(f"model: not allowed here (allowed: {', '.join(sorted(allowed_models))})")
    interim = query.get("interim_results", "false").lower()
    if interim not in ("true", "false"):
        raise BadConfig("interim_results: must be true or false")
    return StreamConfig(
        encoding,
        sample_rate,
        channels,
        language,
        model,
        keyterms=query_terms(keyterms),
        interim_results=interim == "true",
    )


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadConfig(f"{name}: must be an integer") from None


def parse_control(text: str) -> str | None:
    """The control type of a client text frame, or None when it is not one we know."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    return kind if kind in CONTROL_TYPES else None


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def begin(
    session_id: str,
    claims: Claims,
    config: StreamConfig,
    *,
    window_seconds: float,
    provider: str,
    interim_results: bool = False,
    resume_token: str = "",
    resume_seconds: float = 0,
    resumed: bool = False,
    audio_seconds: float = 0.0,
) -> dict[str, Any]:
    """``interim_results``: whether ``Interim`` messages will come (asked for, and the
    gateway has an interim transcriber); ``resumed``: a session continued, which has
    ``audio_seconds`` of audio already."""
    message: dict[str, Any] = {
        "type": "Begin",
        "session_id": session_id,
        "school_id": claims.school_id,
        "group_id": claims.group_id,
        "expires_at": claims.expires_at.isoformat().replace("+00:00", "Z"),
        "config": {
            "encoding": config.encoding,
            "sample_rate": config.sample_rate,
            "channels": config.channels,
            "language": config.language,
            "model": config.model,
            "window_seconds": window_seconds,
            "provider": provider,
            "interim_results": interim_results,
        },
        "resume_token": resume_token,
        "resume_seconds": int(resume_seconds),
        "resumed": resumed,
        "audio_seconds": round(audio_seconds, 6),
    }
    if provider == "simulated":
        message["simulated"] = True
        message["notice"] = "simulated Whisper: transcripts are synthetic, not speech recognition"
    return message


def transcript(
    *,
    seq: int,
    start: float,
    end: float,
    status: str,
    text: str,
    model: str,
    latency_ms: int,
    from_finalize: bool,
    billed_seconds: float = 0.0,
    reason: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "Transcript",
        "seq": seq,
        "start": round(start, 6),
        "end": round(end, 6),
        "status": status,
        "text": text,
        "model": model,
        "latency_ms": latency_ms,
        "from_finalize": from_finalize,
        "billed_seconds": round(billed_seconds, 3),
    }
    if reason is not None:
        message["reason"] = reason
    return message


def interim(*, seq: int, start: float, end: float, text: str, stable_text: str) -> dict[str, Any]:
    return {
        "type": "Interim",
        "seq": seq,
        "start": round(start, 6),
        "end": round(end, 6),
        "text": text,
        "stable_text": stable_text,
    }


def warning(code: str, message: str) -> dict[str, Any]:
    return {"type": "Warning", "code": code, "message": message}


def error(exc: StreamError) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "Error",
        "code": exc.code,
        "message": exc.message,
        "retryable": exc.retryable,
    }
    if exc.retry_after is not None:
        message["retry_after"] = exc.retry_after
    return message


def budget(*, percent_used: float, threshold: int, remaining_usd: float) -> dict[str, Any]:
    return {
        "type": "Budget",
        "percent_used": round(percent_used, 2),
        "threshold": threshold,
        "remaining_usd": round(remaining_usd, 6),
    }


def termination(
    *,
    reason: str,
    audio_seconds: float,
    windows: int,
    transcribed: int,
    silence: int,
    dropped: int,
    cost_usd: float,
) -> dict[str, Any]:
    return {
        "type": "Termination",
        "reason": reason,
        "audio_seconds": round(audio_seconds, 6),
        "windows": windows,
        "transcribed": transcribed,
        "silence": silence,
        "dropped": dropped,
        "cost_usd": round(cost_usd, 6),
    }
