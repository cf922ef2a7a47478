"""structlog set-up: one JSON object per line, with a redaction processor.

Transcript text, audio, tokens, ``Authorization`` values and secrets must
never reach a log line. :func:`redact` enforces that even when a developer
logs such a field by mistake: sensitive keys are replaced and JWT / bearer /
API-key shapes inside any string are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from gateway.observability.tracing import add_trace_ids

REDACTED = "[redacted]"

SENSITIVE_KEYS = frozenset(
    {
        "text",
        "transcript",
        "audio",
        "pcm",
        "prompt",
        "token",
        "access_token",
        "resume",
        "resume_token",
        "jwt",
        "authorization",
        "secret",
        "api_key",
        "openai_api_key",
        "auth_jwt_secret",
        "password",
        "webhook_url",
        "cookie",
    }
)

_MASKS = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),  # JWT
    (re.compile(r"(?i)bearer\s+[^\s,;\"']+"), "Bearer " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"(?i)((?:access_token|resume)=)[^&\s]+"), r"\g<1>" + REDACTED),
    (re.compile(r"https?://hooks\.[^\s\"']+"), REDACTED),  # webhook URLs carry a secret
)


def scrub(value: str) -> str:
    """Mask token-shaped substrings in ``value``."""
    for pattern, replacement in _MASKS:
        value = pattern.sub(replacement, value)
    return value


def _clean(key: str, value: Any) -> Any:
    if key.lower() in SENSITIVE_KEYS:
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop what must never be logged."""
    for key in list(event_dict):
        event_dict[key] = (
            _clean(key, event_dict[key]) if key != "event" else _clean("", event_dict[key])
        )
    return event_dict


def processors(fmt: str) -> list[Any]:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
        renderer,
    ]


class _StdlibBridge(logging.Handler):
    """Lines from libraries that log with :mod:`logging` (aiohttp, asyncio…) go through the
    same processors, redaction included. aiohttp's own exceptions can quote request bytes
    (a header it could not parse), so for them only the exception's type is kept."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name}
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = record.exc_info[0].__name__
            if not record.name.startswith("aiohttp"):
                fields["exc_info"] = record.exc_info
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        if record.name.startswith("aiohttp"):
            message = message.split("\n", 1)[0]
        structlog.get_logger(record.name).log(record.levelno, message, **fields)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure structlog for the process (idempotent), and route stdlib logging through it."""
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StdlibBridge)]
    root.addHandler(_StdlibBridge())
    root.setLevel(max(logging.getLevelNamesMapping()[level.upper()], logging.INFO))
    structlog.configure(
        processors=processors(fmt),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Looked up at each use so a replaced sys.stderr (tests, daemons) is honoured.
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
