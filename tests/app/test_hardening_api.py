"""Hostile and mistaken HTTP input: non-finite numbers, split and chunked bodies, deep nesting,
date formats, token claims, 405s, and budget settings that change mid-day."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.auth.tokens import mint
from gateway.budget.ledger import override_key
from gateway.budget.policy import load_policy
from gateway.errors import PolicyError
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import (
    SECRET,
    GatewayServer,
    http_json,
    open_stream,
    t,
    token,
    write_policy,
)


def jwt(role: str, school: str | None = "s-1") -> str:
    return mint(SECRET, school_id=school, role=role, sub=f"{role}-user")


async def raw_request(server: GatewayServer, parts: list[bytes], pause: float = 0.2) -> bytes:
    """Send ``parts`` as separate TCP segments with a pause between; return the raw answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(pause)
    answer = await asyncio.wait_for(reader.read(65536), t(10))
    writer.close()
    return answer


def put_head(path: str, token_: str, extra: str) -> bytes:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token_}\r\n"
        f"Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_limit_is_400_and_nothing_is_stored(
    gateway: GatewayServer, literal: str
) -> None:
    url = f"{gateway.http}/api/v1/schools/s-1/budget"
    body = f'{{"daily_limit_usd": {literal}}}'.encode()
    answer = await raw_request(
        gateway,
        [
            put_head(
                "/api/v1/schools/s-1/budget",
                jwt("platform_admin", None),
                f"Content-Length: {len(body)}\r\n",
            )
            + body
        ],
    )
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(payload)["error"]["code"] == "VALIDATION_ERROR"
    assert await gateway.state.redis.get(override_key("s-1")) is None  # type: ignore[union-attr]
    status, doc = await http_json("GET", url, jwt("teacher"))
    assert status == 200 and doc["daily_limit_usd"] == 2.5


async def test_a_poisoned_stored_setting_does_not_break_the_school(
    gateway: GatewayServer,
) -> None:
    redis = gateway.state.redis
    assert redis is not None
    await redis.set(override_key("s-1"), '{"daily_limit_usd": NaN}')
    url = f"{gateway.http}/api/v1/schools/s-1/budget"
    status, doc = await http_json("GET", url, jwt("teacher"))
    assert status == 200 and doc["source"] == "policy"
    status, doc = await http_json("PUT", url, jwt("school_admin"), {"daily_limit_usd": 3})
    assert status == 200 and doc["daily_limit_usd"] == 3
    stream = await open_stream(gateway, token())
    await stream.send_audio(tone(440, 1.0))
    messages = await stream.finish()
    await stream.close()
    assert [m["status"] for m in messages if m["type"] == "Transcript"] == ["ok"]


def test_non_finite_numbers_in_a_policy_file_are_refused(tmp_path: Path) -> None:
    path = Path(write_policy(tmp_path / "p.json"))
    path.write_text(path.read_text().replace('"daily_limit_usd": 500', '"daily_limit_usd": NaN'))
    with pytest.raises(PolicyError, match="finite"):
        load_policy(path)


async def test_a_body_split_over_segments_is_read_whole(gateway: GatewayServer) -> None:
    body = b'{"daily_limit_usd": 3.25, "alert_thresholds": [40, 90]}'
    head = put_head(
        "/api/v1/schools/s-1/budget", jwt("school_admin"), f"Content-Length: {len(body)}\r\n"
    )
    answer = await raw_request(gateway, [head + body[:10], body[10:30], body[30:]])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["daily_limit_usd"] == 3.25


async def test_a_chunked_body_over_1_mib_is_413(gateway: GatewayServer) -> None:
    head = put_head(
        "/api/v1/schools/s-1/budget", jwt("school_admin"), "Transfer-Encoding: chunked\r\n"
    )
    chunk = b" " * 300_000
    chunks = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(4)]
    answer = await raw_request(gateway, [head, *chunks, b"0\r\n\r\n"], pause=0.05)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_a_chunked_body_is_read_whole(gateway: GatewayServer) -> None:
    head = put_head(
        "/api/v1/schools/s-1/budget", jwt("school_admin"), "Transfer-Encoding: chunked\r\n"
    )
    body = b'{"daily_limit_usd": 4}'
    chunks = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:5], body[5:])]
    answer = await raw_request(gateway, [head, *chunks, b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 200"), answer


@pytest.mark.parametrize("depth", [100, 100_000])
async def test_deeply_nested_body_is_400(gateway: GatewayServer, depth: int) -> None:
    body = ("[" * depth + "]" * depth).encode()
    head = put_head(
        "/api/v1/schools/s-1/budget", jwt("school_admin"), f"Content-Length: {len(body)}\r\n"
    )
    answer = await raw_request(gateway, [head + body])
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"Traceback" not in answer


@pytest.mark.parametrize("day", ["20261123", "2026-W47", "2026-327", "2026-11-23T00:00"])
async def test_usage_date_must_be_yyyy_mm_dd(gateway: GatewayServer, day: str) -> None:
    status, body = await http_json(
        "GET", f"{gateway.http}/api/v1/schools/s-1/budget/usage?date={day}", jwt("teacher")
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "date"


async def test_a_string_exp_claim_is_refused(gateway: GatewayServer) -> None:
    import jwt as pyjwt

    forged = pyjwt.encode(
        {"role": "teacher", "school_id": "s-1", "exp": "99999999999"}, SECRET, algorithm="HS256"
    )
    status, body = await http_json("GET", f"{gateway.http}/api/v1/schools/s-1/budget", forged)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_405_names_the_allowed_methods(gateway: GatewayServer) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.http}/api/v1/health") as response,
    ):
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_delete_returns_a_school_to_its_policy(gateway: GatewayServer) -> None:
    url = f"{gateway.http}/api/v1/schools/s-1/budget"
    assert (await http_json("PUT", url, jwt("school_admin"), {"daily_limit_usd": 4}))[0] == 200
    assert (await http_json("DELETE", url, jwt("teacher")))[0] == 403
    status, doc = await http_json("DELETE", url, jwt("school_admin"))
    assert status == 200 and doc["source"] == "policy" and doc["daily_limit_usd"] == 2.5
    assert (await http_json("GET", url, jwt("teacher")))[1]["source"] == "policy"
    audit = gateway.state.audit.path.read_text()
    assert audit.count('"budget.updated"') == 2


async def _windows(server: GatewayServer, school: str, group: str, n: int) -> list[dict]:  # type: ignore[type-arg]
    stream = await open_stream(server, token(school, group))
    for _ in range(n):
        await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "CloseStream"})
    messages = await stream.collect(timeout=30)
    await stream.close()
    return messages


async def test_raising_the_limit_clears_exceeded_and_the_downgrade(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "policy.json",
        schools={"tight": {"daily_limit_usd": 0.0002, "timezone": "UTC"}},
        downgrade=[{"at_percent": 80, "model": "gpt-4o-mini-transcribe"}],
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy, STT_MAX_IN_FLIGHT_PER_SESSION=1)
    usage_url = f"{server.http}/api/v1/schools/tight/budget/usage"
    admin = mint(SECRET, school_id="tight", role="school_admin")
    first = await _windows(server, "tight", "g", 4)
    assert any(m.get("reason") == "BUDGET_EXCEEDED" for m in first)
    assert (await http_json("GET", usage_url, admin))[1]["status"] == "exceeded"
    status, _ = await http_json(
        "PUT", f"{server.http}/api/v1/schools/tight/budget", admin, {"daily_limit_usd": 1}
    )
    assert status == 200
    doc = (await http_json("GET", usage_url, admin))[1]
    assert doc["status"] == "ok", doc
    again = [m for m in await _windows(server, "tight", "g", 1) if m["type"] == "Transcript"]
    assert again[0]["status"] == "ok" and again[0]["model"] == "whisper-1"


async def test_budget_notice_reports_what_is_left(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Three windows in flight hold the whole limit; the fourth is refused while nothing is
    spent yet: the 100 % notice says nothing is left (not the limit)."""
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"full": {"daily_limit_usd": 0.0003, "timezone": "UTC"}},
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy, STT_MAX_IN_FLIGHT_PER_SESSION=4)
    server.fake.behaviour.latency_ms = 1500
    messages = await _windows(server, "full", "g", 4)
    notices = [m for m in messages if m["type"] == "Budget"]
    assert [n["threshold"] for n in notices] == [50, 80, 100], messages
    assert [n["remaining_usd"] for n in notices] == [0, 0, 0]
