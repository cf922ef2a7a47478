"""Every exception the gateway raises on purpose, and what each one means at the edge.

::

    GatewayError                     code · HTTP status · close code
    ├── ConfigurationError           start-up: a bad environment variable or file
    │   └── PolicyError              the budget policy file (each problem listed)
    ├── LedgerUnavailable            the ledger's Redis failing (map_redis_errors), 503
    │   └── LedgerNotReplicated      a charge no replica confirmed in time: kept owed
    ├── HttpError                    an HTTP API refusal (status and code per instance)
    │   ├── TooManyFailures          429 TOO_MANY_REQUESTS (Retry-After)
    │   ├── BodyTimeout              408 REQUEST_TIMEOUT: the body was too slow; connection closed
    │   └── ClientGone               the client reset the connection mid-body (nobody to answer)
    ├── StreamError                  ends a WebSocket session (close code + Error code)
    │   ├── Unauthorized             4001 UNAUTHORIZED, HTTP 401
    │   │   └── InvalidToken         a token that is missing, malformed, badly signed or expired
    │   ├── Forbidden                4003 FORBIDDEN, HTTP 403
    │   ├── BadConfig                4000 BAD_CONFIG, HTTP 400
    │   ├── BadAudio                 1007 BAD_AUDIO, HTTP 400
    │   ├── FrameTooLarge            1009 BAD_AUDIO, HTTP 413
    │   ├── Overloaded               1013 OVERLOADED, HTTP 503 (retry_after)
    │   ├── LedgerDown               1013 BUDGET_UNAVAILABLE, HTTP 503 (strict mode, retry_after)
    │   ├── Replaced                 4009 REPLACED, HTTP 409
    │   ├── IdleTimeout              4031 IDLE_TIMEOUT, HTTP 408
    │   ├── SessionExpired           4008 SESSION_EXPIRED, HTTP 401
    │   ├── BacklogOverflow          4029 BACKLOG, HTTP 429
    │   ├── BudgetExhausted          4402 BUDGET_EXCEEDED, HTTP 402
    │   └── InternalError            1011 INTERNAL, HTTP 500
    ├── BudgetError                  a reservation that cannot be made
    │   ├── BudgetRefused            BUDGET_EXCEEDED, HTTP 402 (the scope that refused)
    │   └── BudgetUnavailable        BUDGET_UNAVAILABLE, HTTP 503 (strict mode, ledger down)
    └── UpstreamError                one upstream attempt failed (mapped at one boundary)
        ├── RateLimited              429, retried, honours Retry-After
        ├── QuotaExhausted           429 insufficient_quota, not retried
        ├── UpstreamRejected         other 4xx, not retried
        │   └── UpstreamAuthRejected 401/403: the API key or its permissions (operator problem)
        ├── ServerError              5xx or a malformed answer, retried, trips the breaker
        ├── UpstreamTimeout          retried, trips the breaker
        ├── UpstreamConnectionError  retried, trips the breaker
        ├── CircuitOpen              the breaker refused the call; the window is held
        └── LocalModelFailed         the in-process model raised on a window; not retried

    JsonError, BadKeyterms           ValueErrors: the JSON decoder's hooks and the settings'
                                     validators (pydantic) need that base

Every error carries what the edge needs — ``code``, ``http_status``,
``close_code``, ``retryable``, ``retry_after`` — and one module,
:mod:`gateway.web.errors`, turns any of them into a close frame, the API's JSON
envelope or an OpenAI-shaped error.
"""

from __future__ import annotations

import math


class GatewayError(Exception):
    """Base of every deliberate gateway error."""

    code: str = "INTERNAL"
    http_status: int = 500
    close_code: int = 1011
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class HttpError(GatewayError):
    """An HTTP API refusal: its status, code, message and any per-field details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = self.status = status
        self.code = code
        self.details = details
        self.headers = headers


class TooManyFailures(HttpError):
    """Too many failed authentications from this address; retry after ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        wait = max(1, math.ceil(retry_after))
        message = "too many failed authentications from this address"
        super().__init__(429, "TOO_MANY_REQUESTS", message, headers={"Retry-After": str(wait)})
        self.retry_after = wait


class BodyTimeout(HttpError):
    """The request body did not arrive within ``HTTP_BODY_TIMEOUT_SECONDS``."""

    def __init__(self, seconds: float) -> None:
        message = f"the request body did not arrive within {seconds:g} s"
        super().__init__(408, "REQUEST_TIMEOUT", message, headers={"Connection": "close"})


class ClientGone(HttpError):
    """The client reset the connection while its body was read: nobody reads the answer."""

    def __init__(self) -> None:
        super().__init__(400, "CLIENT_GONE", "the client closed the connection mid-request")


class ConfigurationError(GatewayError):
    """Start-up configuration is invalid; the message is one line naming the variable."""


class PolicyError(ConfigurationError):
    """The budget policy file is missing, unreadable or invalid (each problem listed)."""

    def __init__(self, path: str, found: list[str]) -> None:
        super().__init__(f"invalid budget policy {path}: " + "; ".join(found))
        self.path = path
        self.problems = found


class JsonError(ValueError):
    """Not a JSON document we accept; the message says why (safe to show). A ValueError:
    the standard library's JSON decoder raises it from the hooks it calls."""


class BadKeyterms(ValueError):
    """The terms break the limits; the message names the problem, never the terms. A
    ValueError: the settings' validators (pydantic) turn it into a field error."""


class LedgerUnavailable(GatewayError):
    """The ledger's Redis failing (:func:`gateway.redis.errors.map_redis_errors`): ``error``
    names the client's error, ``refused``: Redis answered and refused (out of memory…)."""

    code, http_status, retryable = "BUDGET_UNAVAILABLE", 503, True

    def __init__(self, message: str, *, error: str = "", refused: bool = False) -> None:
        super().__init__(message)
        self.error = error or type(self).__name__
        self.refused = refused


class LedgerNotReplicated(LedgerUnavailable):
    """A charge no connected replica confirmed in time: kept owed (journaled) and committed
    again until one does (idempotent per reservation, so never twice)."""


class StreamError(GatewayError):
    """Ends a streaming session with ``Error`` then a close code."""

    #: ``stt_sessions_ended_total`` reason for this ending.
    end_reason: str = "error"


class Unauthorized(StreamError):
    close_code, code, http_status = 4001, "UNAUTHORIZED", 401


class InvalidToken(Unauthorized):
    """The token is missing, malformed, badly signed, expired or lacks a claim."""


class Forbidden(StreamError):
    close_code, code, http_status = 4003, "FORBIDDEN", 403


class BadConfig(StreamError):
    close_code, code, http_status = 4000, "BAD_CONFIG", 400


class BadAudio(StreamError):
    close_code, code, http_status = 1007, "BAD_AUDIO", 400


class FrameTooLarge(StreamError):
    close_code, code, http_status = 1009, "BAD_AUDIO", 413


class Overloaded(StreamError):
    close_code, code, http_status, retryable = 1013, "OVERLOADED", 503, True


class LedgerDown(StreamError):
    """Strict mode and the budget ledger cannot be reached: no stream is admitted whose
    windows could only be dropped."""

    close_code, code, http_status, retryable = 1013, "BUDGET_UNAVAILABLE", 503, True


class Replaced(StreamError):
    close_code, code, http_status, end_reason = 4009, "REPLACED", 409, "replaced"


class IdleTimeout(StreamError):
    close_code, code, http_status, retryable = 4031, "IDLE_TIMEOUT", 408, True
    end_reason = "idle_timeout"


class SessionExpired(StreamError):
    close_code, code, http_status, retryable = 4008, "SESSION_EXPIRED", 401, True


class BacklogOverflow(StreamError):
    close_code, code, http_status, retryable = 4029, "BACKLOG", 429, True


class BudgetExhausted(StreamError):
    close_code, code, http_status = 4402, "BUDGET_EXCEEDED", 402
    end_reason = "budget_exhausted"


class InternalError(StreamError):
    close_code, code, http_status = 1011, "INTERNAL", 500


class BudgetError(GatewayError):
    """A window's (or a request's) reservation cannot be made."""


class BudgetRefused(BudgetError):
    """A scope's daily limit would be passed (``scope``: global, district, school, model)."""

    close_code, code, http_status = 4402, "BUDGET_EXCEEDED", 402

    def __init__(self, scope: str) -> None:
        super().__init__(f"budget exhausted for {scope}")
        self.scope = scope


class BudgetUnavailable(BudgetError):
    """Strict mode and the ledger cannot be reached."""

    code, http_status, retryable = "BUDGET_UNAVAILABLE", 503, True


class UpstreamError(GatewayError):
    """One upstream attempt failed. ``outcome`` is the metrics label."""

    code, http_status = "STT_UNAVAILABLE", 503
    outcome: str = "server_error"
    retryable: bool = True
    trips_breaker: bool = True
    #: ``Transcript.reason`` when the window is dropped because of this error.
    drop_reason: str = "STT_UNAVAILABLE"


class RateLimited(UpstreamError):
    outcome, trips_breaker = "rate_limited", False


class QuotaExhausted(UpstreamError):
    code, http_status = "UPSTREAM_QUOTA", 429
    outcome, retryable, trips_breaker, drop_reason = (
        "quota_exhausted",
        False,
        False,
        "UPSTREAM_QUOTA",
    )


class UpstreamRejected(UpstreamError):
    code, http_status = "UPSTREAM_REJECTED", 400
    outcome, retryable, trips_breaker, drop_reason = ("rejected", False, False, "UPSTREAM_REJECTED")


class UpstreamAuthRejected(UpstreamRejected):
    """The upstream refused the gateway's credentials: no window can succeed until an
    operator fixes ``OPENAI_API_KEY`` (readiness degraded, a Warning, an error log, an alert)."""


class ServerError(UpstreamError):
    outcome = "server_error"


class UpstreamTimeout(UpstreamError):
    outcome = "timeout"


class UpstreamConnectionError(UpstreamError):
    outcome = "connection_error"


class CircuitOpen(UpstreamError):
    outcome, trips_breaker = "not_permitted", False


class LocalModelFailed(UpstreamError):
    """The model raised on this window: dropped at once (retrying would fail the same way);
    consecutive failures open the circuit like a broken upstream."""

    outcome, retryable, drop_reason = "server_error", False, "STT_UNAVAILABLE"
