"""Every exception the gateway raises on purpose.

::

    GatewayError
    ├── ConfigurationError           start-up: a bad environment variable or file
    ├── StreamError                  ends a WebSocket session (close code + Error code)
    │   ├── Unauthorized             4001 UNAUTHORIZED
    │   ├── Forbidden                4003 FORBIDDEN
    │   ├── BadConfig                4000 BAD_CONFIG
    │   ├── BadAudio                 1007 BAD_AUDIO
    │   ├── FrameTooLarge            1009 BAD_AUDIO
    │   ├── Overloaded               1013 OVERLOADED (retry_after)
    │   ├── Replaced                 4009 REPLACED
    │   ├── IdleTimeout              4031 IDLE_TIMEOUT
    │   ├── SessionExpired           4008 SESSION_EXPIRED
    │   ├── BacklogOverflow          4029 BACKLOG
    │   ├── BudgetExhausted          4402 BUDGET_EXCEEDED
    │   └── InternalError            1011 INTERNAL
    └── UpstreamError                one upstream attempt failed (mapped at one boundary)
        ├── RateLimited              429, retried, honours Retry-After
        ├── QuotaExhausted           429 insufficient_quota, not retried
        ├── UpstreamRejected         other 4xx, not retried
        │   └── UpstreamAuthRejected 401/403: the API key or its permissions (operator problem)
        ├── ServerError              5xx or a malformed answer, retried, trips the breaker
        ├── UpstreamTimeout          retried, trips the breaker
        ├── UpstreamConnectionError  retried, trips the breaker
        └── CircuitOpen              the breaker refused the call; the window is held

Leaves carry what the edge needs: the close code, the protocol error code and
whether the client may retry.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every deliberate gateway error."""


class ConfigurationError(GatewayError):
    """Start-up configuration is invalid; the message is one line naming the variable."""


class StreamError(GatewayError):
    """Ends a streaming session with ``Error`` then a close code."""

    close_code: int = 1011
    code: str = "INTERNAL"
    retryable: bool = False
    #: ``stt_sessions_ended_total`` reason for this ending.
    end_reason: str = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Unauthorized(StreamError):
    close_code, code = 4001, "UNAUTHORIZED"


class Forbidden(StreamError):
    close_code, code = 4003, "FORBIDDEN"


class BadConfig(StreamError):
    close_code, code = 4000, "BAD_CONFIG"


class BadAudio(StreamError):
    close_code, code = 1007, "BAD_AUDIO"


class FrameTooLarge(StreamError):
    close_code, code = 1009, "BAD_AUDIO"


class Overloaded(StreamError):
    close_code, code, retryable = 1013, "OVERLOADED", True


class Replaced(StreamError):
    close_code, code, end_reason = 4009, "REPLACED", "replaced"


class IdleTimeout(StreamError):
    close_code, code, retryable, end_reason = 4031, "IDLE_TIMEOUT", True, "idle_timeout"


class SessionExpired(StreamError):
    close_code, code, retryable = 4008, "SESSION_EXPIRED", True


class BacklogOverflow(StreamError):
    close_code, code, retryable = 4029, "BACKLOG", True


class BudgetExhausted(StreamError):
    close_code, code, end_reason = 4402, "BUDGET_EXCEEDED", "budget_exhausted"


class InternalError(StreamError):
    close_code, code = 1011, "INTERNAL"


class UpstreamError(GatewayError):
    """One upstream attempt failed. ``outcome`` is the metrics label."""

    outcome: str = "server_error"
    retryable: bool = True
    trips_breaker: bool = True
    #: ``Transcript.reason`` when the window is dropped because of this error.
    drop_reason: str = "STT_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class RateLimited(UpstreamError):
    outcome, trips_breaker = "rate_limited", False


class QuotaExhausted(UpstreamError):
    outcome, retryable, trips_breaker, drop_reason = (
        "quota_exhausted",
        False,
        False,
        "UPSTREAM_QUOTA",
    )


class UpstreamRejected(UpstreamError):
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
