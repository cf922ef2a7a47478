"""The one error tree and the one place it is mapped to what a client sees."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway import errors
from gateway.web.errors import close_frame, error_response, openai_error_for

PROTOCOL_CODES = {  # protocol.md: Error codes and their close codes
    "UNAUTHORIZED": 4001,
    "FORBIDDEN": 4003,
    "BAD_CONFIG": 4000,
    "OVERLOADED": 1013,
    "BUDGET_UNAVAILABLE": 1013,  # the ledger down in strict mode, at the handshake
    "REPLACED": 4009,
    "IDLE_TIMEOUT": 4031,
    "SESSION_EXPIRED": 4008,
    "BUDGET_EXCEEDED": 4402,
    "BACKLOG": 4029,
    "INTERNAL": 1011,
}


def _leaves(cls: type[errors.GatewayError]) -> list[type[errors.GatewayError]]:
    subclasses = cls.__subclasses__()
    return [cls] if not subclasses else [leaf for s in subclasses for leaf in _leaves(s)]


@pytest.mark.parametrize("cls", _leaves(errors.StreamError), ids=lambda c: c.__name__)
def test_every_stream_error_has_its_protocol_close_code_and_an_http_status(
    cls: type[errors.StreamError],
) -> None:
    exc = cls("why")
    if exc.code in PROTOCOL_CODES:
        assert exc.close_code == PROTOCOL_CODES[exc.code]
    else:
        assert exc.code == "BAD_AUDIO" and exc.close_code in (1007, 1009)
    assert 400 <= exc.http_status < 600
    assert close_frame(exc) == (exc.close_code, exc.code.encode())


def test_every_leaf_of_the_tree_says_what_the_edge_needs() -> None:
    for cls in _leaves(errors.GatewayError):
        assert cls.code and cls.http_status and cls.close_code, cls


def test_the_json_envelope_carries_status_code_details_and_retry_after() -> None:
    request = make_mocked_request("GET", "/api/v1/x")
    response = error_response(request, errors.Overloaded("busy", retry_after=2.5))
    assert response.status == 503 and response.headers["Retry-After"] == "3"
    assert response.text is not None
    assert json.loads(response.text)["error"]["code"] == "OVERLOADED"
    bad = errors.HttpError(422, "VALIDATION", "no", [{"field": "x", "problem": "y"}])
    body = json.loads(error_response(request, bad).text or "")
    assert body["error"]["details"] == [{"field": "x", "problem": "y"}]
    unauthorized = error_response(request, errors.InvalidToken("token expired"))
    assert unauthorized.status == 401
    assert json.loads(unauthorized.text or "")["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("exc", "status", "code", "kind"),
    [
        (errors.TooManyFailures(3.2), 429, "rate_limit_exceeded", "requests"),
        (errors.InvalidToken("invalid token"), 401, "invalid_api_key", "invalid_request_error"),
        (errors.BudgetRefused("school"), 429, "BUDGET_EXCEEDED", "insufficient_quota"),
        (errors.BudgetUnavailable("down"), 503, "BUDGET_UNAVAILABLE", "server_error"),
        (errors.QuotaExhausted("quota"), 429, "UPSTREAM_QUOTA", "server_error"),
        (errors.UpstreamAuthRejected("key"), 400, "UPSTREAM_REJECTED", "server_error"),
        (errors.ServerError("5xx"), 503, "STT_UNAVAILABLE", "server_error"),
    ],
)
def test_openai_shaped_errors(exc: errors.GatewayError, status: int, code: str, kind: str) -> None:
    response = openai_error_for(exc)
    body = json.loads(response.text or "")["error"]
    assert (response.status, body["code"], body["type"]) == (status, code, kind)
    if isinstance(exc, errors.TooManyFailures):
        assert response.headers["Retry-After"] == "4"
