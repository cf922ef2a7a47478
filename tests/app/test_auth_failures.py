"""Failed authentications: a per-address limit (429 + Retry-After) and aggregated audit records."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gateway.auth.failures import DenialAggregator, FailureLimiter
from tests.conftest import GatewayFactory
from tests.support.budget import jwt
from tests.support.helpers import http_json


def test_the_limiter_blocks_past_the_limit_until_the_window_ends() -> None:
    limiter = FailureLimiter(3, 60.0)
    for _ in range(3):
        assert limiter.blocked_for("a", 10.0) == 0
        limiter.failed("a", 10.0)
    assert limiter.blocked_for("a", 20.0) == 50.0
    assert limiter.blocked_for("b", 20.0) == 0
    assert limiter.blocked_for("a", 70.0) == 0


def test_the_limiter_and_aggregator_stay_bounded() -> None:
    limiter = FailureLimiter(3, 60.0, max_tracked=100)
    aggregator = DenialAggregator(60.0, max_tracked=100)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", 1.0)
        aggregator.denied((f"10.0.{i // 256}.{i % 256}", "bad"), 1.0)
    assert len(limiter) <= 100 and len(aggregator) <= 100


def test_a_flood_becomes_one_record_then_one_summary() -> None:
    aggregator = DenialAggregator(60.0)
    first = aggregator.denied(("1.2.3.4", "invalid token", "/x"), 0.0)
    assert [(d.count, d.summary) for d in first] == [(1, False)]
    for i in range(1, 1000):
        assert aggregator.denied(("1.2.3.4", "invalid token", "/x"), i / 100) == []
    assert aggregator.flush(30.0) == []
    (summary,) = aggregator.flush(61.0)
    assert summary.summary and summary.count == 999 and summary.last_at == 9.99
    assert aggregator.flush(200.0) == []


async def test_blocked_addresses_get_429_everywhere_but_valid_tokens_pass(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(AUTH_FAILURES_PER_MINUTE=20)
    url = f"{server.http}/api/v1/schools/s-1/budget"
    statuses = []
    retry_after = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.get(url, headers={"Authorization": "Bearer junk"}) as response:
                statuses.append(response.status)
                if response.status == 429:
                    retry_after = int(response.headers["Retry-After"])
        async with session.post(
            f"{server.http}/v1/audio/transcriptions", headers={"Authorization": "Bearer junk"}
        ) as response:
            assert response.status == 429 and "Retry-After" in response.headers
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(server.ws_url, headers={"Authorization": "Bearer junk"})
        assert refused.value.status == 429
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    assert 0 < retry_after <= 60
    assert (await http_json("GET", url, jwt("teacher")))[0] == 200
    server.state.auth_guard.flush(everything=True)
    records = [
        json.loads(line)
        for line in server.state.audit.path.read_text().splitlines()
        if '"auth.denied"' in line
    ]
    assert len(records) == 2, records
    assert records[0]["source"] == "127.0.0.1" and "count" not in records[0]
    assert records[1]["aggregated"] and records[1]["count"] == 19
