"""Budget, usage, alerts and token endpoints: roles, validation, envelopes."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest

from gateway.auth.secret import resolve_audit_key
from gateway.auth.tokens import verify
from gateway.observability.audit_verify import verify as verify_audit
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.budget import jwt
from tests.support.helpers import (
    SECRET,
    GatewayServer,
    http_json,
    stream_and_close,
    token,
    write_policy,
)


@pytest.fixture
async def server(make_gateway: GatewayFactory) -> GatewayServer:
    return await make_gateway()


async def test_budget_config_roles(server: GatewayServer) -> None:
    url = f"{server.http}/api/v1/schools/s-1/budget"
    status, body = await http_json("GET", url, jwt("teacher"))
    assert status == 200
    assert body == {
        "school_id": "s-1",
        "daily_limit_usd": 2.5,
        "timezone": "America/Chicago",
        "alert_thresholds": [50, 80, 100],
        "district_id": "d-1",
        "source": "policy",
    }
    assert (await http_json("GET", url, jwt("student")))[0] == 403
    assert (await http_json("GET", url))[0] == 401
    assert (await http_json("GET", url, "garbage"))[0] == 401
    status, body = await http_json("GET", url, jwt("teacher", "s-2"))
    assert status == 403 and body["error"]["code"] == "FORBIDDEN" and "daily" not in str(body)
    assert (await http_json("GET", url, jwt("platform_admin", None)))[0] == 200


async def test_put_budget(server: GatewayServer) -> None:
    url = f"{server.http}/api/v1/schools/s-1/budget"
    assert (await http_json("PUT", url, jwt("teacher"), {"daily_limit_usd": 3}))[0] == 403
    status, body = await http_json(
        "PUT", url, jwt("school_admin"), {"daily_limit_usd": 3.5, "alert_thresholds": [60, 90]}
    )
    assert status == 200, body
    assert body["daily_limit_usd"] == 3.5 and body["alert_thresholds"] == [60, 90]
    assert body["source"] == "override"
    assert (await http_json("GET", url, jwt("teacher")))[1]["daily_limit_usd"] == 3.5
    status, body = await http_json("PUT", url, jwt("school_admin"), {"daily_limit_usd": 51})
    assert status == 400 and body["error"]["details"][0]["field"] == "daily_limit_usd"
    assert (await http_json("PUT", url, jwt("platform_admin", None), {"daily_limit_usd": 51}))[
        0
    ] == 200
    records = [
        line
        for line in server.state.audit.path.read_text().splitlines()
        if '"budget.updated"' in line
    ]
    assert len(records) == 2 and '"old"' in records[0] and '"new"' in records[0]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"daily_limit_usd": -1}, ["daily_limit_usd"]),
        ({"timezone": "Mars/Olympus"}, ["timezone"]),
        ({"alert_thresholds": [90, 50]}, ["alert_thresholds"]),
        ({"alert_thresholds": [0, 101]}, ["alert_thresholds/0", "alert_thresholds/1"]),
        ({"bogus": 1}, ["bogus"]),
        ({}, ["(body)"]),
        ([1, 2], ["(body)"]),
    ],
)
async def test_validation_errors_name_fields(
    server: GatewayServer, body: object, fields: list[str]
) -> None:
    status, answer = await http_json(
        "PUT", f"{server.http}/api/v1/schools/s-1/budget", jwt("school_admin"), body
    )
    assert status == 400
    error = answer["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["request_id"]
    assert [d["field"] for d in error["details"]] == fields


async def test_body_over_1_mib_is_413(server: GatewayServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{server.http}/api/v1/schools/s-1/budget",
            data=io.BytesIO(b"{" + b" " * (1024 * 1024 + 10)),
            headers={
                "Authorization": f"Bearer {jwt('school_admin')}",
                "Content-Type": "application/json",
            },
        ) as r,
    ):
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_usage_equals_what_was_committed(server: GatewayServer) -> None:
    await stream_and_close(server, tone(440, 2.5), jwt=token("s-1", "g-1"))
    await stream_and_close(server, tone(300, 1.0), jwt=token("s-1", "g-2"))
    status, usage = await http_json(
        "GET", f"{server.http}/api/v1/schools/s-1/budget/usage", jwt("teacher")
    )
    assert status == 200
    # 3.5 s of whisper-1 at $0.006/min = $0.00035 exactly
    assert usage["spent_usd"] == 0.00035 and usage["reserved_usd"] == 0
    assert usage["audio_seconds"] == 3.5
    assert usage["by_model"] == {"whisper-1": {"audio_seconds": 3.5, "spent_usd": 0.00035}}
    assert usage["remaining_usd"] == pytest.approx(2.5 - 0.00035)
    assert usage["status"] == "ok" and usage["enforcement_mode"] == "strict"
    assert usage["timezone"] == "America/Chicago"
    status, usage = await http_json(
        "GET", f"{server.http}/api/v1/schools/s-1/budget/usage?date=1999-01-01", jwt("teacher")
    )
    assert status == 400 and usage["error"]["details"][0]["field"] == "date"
    status, everything = await http_json(
        "GET", f"{server.http}/api/v1/budget/usage", jwt("platform_admin", None)
    )
    assert status == 200
    assert [s["school_id"] for s in everything["schools"]] == ["s-1"]
    scopes = {s["scope"]: s for s in everything["scopes"]}
    assert scopes["global"]["spent_usd"] == 0.00035
    assert scopes["district:d-1"]["spent_usd"] == 0.00035
    assert (await http_json("GET", f"{server.http}/api/v1/budget/usage", jwt("teacher")))[0] == 403


async def test_alerts_config(server: GatewayServer) -> None:
    url = f"{server.http}/api/v1/schools/s-1/budget/alerts"
    status, body = await http_json("GET", url, jwt("teacher"))
    assert (status, body) == (
        200,
        {"thresholds": [50, 80, 100], "webhook_configured": False, "fired": []},
    )
    status, body = await http_json(
        "PUT",
        url,
        jwt("school_admin"),
        {"thresholds": [25, 75], "webhook_url": "https://hooks.example.org/T0/B0/secret"},
    )
    assert (status, body) == (200, {"thresholds": [25, 75], "webhook_configured": True})
    for bad in ("http://example.org/hook", "ftp://x", "not a url"):
        status, body = await http_json("PUT", url, jwt("school_admin"), {"webhook_url": bad})
        assert status == 400 and body["error"]["details"][0]["field"] == "webhook_url"
    assert (
        await http_json("PUT", url, jwt("school_admin"), {"webhook_url": "http://127.0.0.1:9/hook"})
    )[0] == 200
    assert (await http_json("PUT", url, jwt("teacher"), {"thresholds": [10]}))[0] == 403
    audit = server.state.audit.path.read_text()
    assert "budget.alerts_updated" in audit and "secret" not in audit


async def test_tokens_endpoint(server: GatewayServer) -> None:
    url = f"{server.http}/api/v1/tokens"
    status, body = await http_json(
        "POST", url, jwt("teacher"), {"group_id": "table-4", "ttl_seconds": 600}
    )
    assert status == 201
    claims = verify(body["token"], SECRET)
    assert (claims.role, claims.school_id, claims.group_id) == ("student", "s-1", "table-4")
    assert body["expires_at"].endswith("Z")
    assert (await http_json("POST", url, jwt("student"), {"group_id": "x"}))[0] == 403
    assert (await http_json("POST", url, jwt("teacher"), {"group_id": "x", "school_id": "s-2"}))[
        0
    ] == 403
    status, body = await http_json(
        "POST", url, jwt("platform_admin", None), {"group_id": "x", "school_id": "s-9"}
    )
    assert status == 201 and verify(body["token"], SECRET).school_id == "s-9"
    status, body = await http_json("POST", url, jwt("teacher"), {"ttl_seconds": 5})
    assert status == 400
    assert sorted(d["field"] for d in body["error"]["details"]) == ["group_id", "ttl_seconds"]
    audit = server.state.audit.path.read_text()
    assert audit.count('"token.issued"') == 2
    assert "eyJ" not in audit


async def test_audit_trail_verifies(server: GatewayServer, tmp_path: Path) -> None:
    await stream_and_close(server, tone(440, 1.0))
    await http_json("GET", f"{server.http}/api/v1/schools/s-1/budget", "bad-token")
    path = server.state.audit.path
    text = path.read_text()
    for event in ("session.started", "session.ended", "auth.denied"):
        assert f'"{event}"' in text
    assert "[simulated]" not in text and "tone 440" not in text
    assert verify_audit(path, resolve_audit_key(server.state.settings)).ok


async def test_a_school_that_streamed_for_free_is_listed(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """A school on a model priced 0 (a local Whisper) spends $0 but used the gateway."""
    policy = write_policy(
        tmp_path / "free.json",
        downgrade=[],
        pricing_usd_per_minute={"whisper-1": 0, "gpt-4o-mini-transcribe": 0.003},
        models={},
    )
    server = await make_gateway(BUDGET_POLICY_PATH=policy)
    await stream_and_close(server, tone(440, 2.0), jwt=token("s-free", "g-1"))
    status, body = await http_json(
        "GET", f"{server.http}/api/v1/budget/usage", jwt("platform_admin", None)
    )
    assert status == 200
    free = [s for s in body["schools"] if s["school_id"] == "s-free"]
    assert free and free[0]["spent_usd"] == 0 and free[0]["audio_seconds"] > 0
