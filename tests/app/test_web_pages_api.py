"""What the pages need from the gateway: the pages and their headers, the fleet-wide sessions
list, group links, and CORS for a platform's own dashboard."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from gateway.auth.tokens import verify
from gateway.fleet.presence import STALE_AFTER_SECONDS, fresh, sessions_key
from gateway.web.links import page_link
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import SECRET, GatewayServer, connect, eventually, http_json, token
from tests.support.redis_server import RedisServer

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.mark.parametrize("path", ["/", "/classroom", "/teacher", "/admin"])
async def test_pages_are_served_with_their_security_headers(
    gateway: GatewayServer, path: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.http + path, headers=HTML) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/html"
        body = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in body and 'type="module"' in body  # no inline script


async def test_static_files_and_nothing_else(gateway: GatewayServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.http + "/static/js/classroom.js") as resp:
            assert resp.status == 200 and resp.content_type == "text/javascript"
            etag = resp.headers["ETag"]
        async with session.get(
            gateway.http + "/static/js/classroom.js", headers={"If-None-Match": etag}
        ) as resp:
            assert resp.status == 304
        for bad in ("/static/../settings.py", "/static/js/nope.js", "/static/%2e%2e/app.py"):
            async with session.get(gateway.http + bad) as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == "NOT_FOUND"


async def test_the_index_stays_json_for_programs(gateway: GatewayServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(gateway.http + "/") as resp:
        assert resp.content_type == "application/json"
        assert (await resp.json())["service"] == "stt-gateway"


async def test_group_links_carry_a_single_use_code_in_the_fragment(
    gateway: GatewayServer,
) -> None:
    status, body = await http_json(
        "POST",
        f"{gateway.http}/api/v1/tokens",
        token(role="teacher"),
        {"group_id": "table-4", "keyterms": ["Omar"]},
    )
    assert status == 201
    prefix = f"{gateway.http}/classroom#code="
    assert body["url"].startswith(prefix) and body["token"] not in body["url"]
    assert verify(body["token"], SECRET).group_id == "table-4"
    assert page_link("https://x.example/", "T", role="school_admin") == (
        "https://x.example/admin#token=T"
    )


async def test_the_sessions_list_shows_open_streams_without_text(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway()
    teacher = token("s-1", role="teacher")
    url = f"{server.http}/api/v1/schools/s-1/sessions"
    streams = [await connect(server, token("s-1", f"g-{i}")) for i in range(2)]
    other = await connect(server, token("s-2", "g-x"))
    for s in [*streams, other]:
        await s.next()
    await streams[0].send_audio(tone(440, 1.0))
    await streams[0].send_json({"type": "Finalize"})
    await streams[0].next()

    async def listed() -> list[dict[str, object]]:
        status, body = await http_json("GET", url, teacher)
        assert status == 200
        return list(body["sessions"])

    await eventually(lambda: server.fake.answered >= 1)
    sessions: list[dict[str, object]] = []
    for _ in range(50):
        sessions = await listed()
        if len(sessions) == 2 and any(s["audio_seconds"] for s in sessions):
            break
        await asyncio.sleep(0.2)
    assert {s["group_id"] for s in sessions} == {"g-0", "g-1"}
    assert set(sessions[0]) == {
        "session_id", "group_id", "started_at", "audio_seconds", "windows", "model"
    }  # fmt: skip
    assert "text" not in json.dumps(sessions)
    status, _ = await http_json("GET", url, token("s-2", role="teacher"))
    assert status == 403
    for s in [*streams, other]:
        await s.close()
    for _ in range(50):
        if not await listed():
            break
        await asyncio.sleep(0.1)
    assert await listed() == []


async def test_sessions_are_fleet_wide_and_a_dead_replicas_fade(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    """Two replicas on one Redis list each other's streams; a record nobody refreshes goes."""
    first = await make_gateway(REDIS_URL=redis_server.url)
    second = await make_gateway(REDIS_URL=redis_server.url)
    a = await connect(first, token("s-1", "on-first"))
    b = await connect(second, token("s-1", "on-second"))
    await a.next()
    await b.next()
    teacher = token("s-1", role="teacher")
    groups: set[str] = set()
    for _ in range(50):
        _, body = await http_json("GET", f"{first.http}/api/v1/schools/s-1/sessions", teacher)
        groups = {s["group_id"] for s in body["sessions"]}
        if groups == {"on-first", "on-second"}:
            break
        await asyncio.sleep(0.1)
    assert groups == {"on-first", "on-second"}
    # a replica that died without cleaning up: its record is too old and disappears
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    old = {"session_id": "ghost", "group_id": "ghost", "started_at": "2026-01-01T00:00:00Z",
           "audio_seconds": 1.0, "windows": {"ok": 0, "silence": 0, "dropped": 0},
           "model": "whisper-1", "seen_at": time.time() - STALE_AFTER_SECONDS - 1}  # fmt: skip
    await client.hset(sessions_key("s-1"), "ghost", json.dumps(old))
    _, body = await http_json("GET", f"{second.http}/api/v1/schools/s-1/sessions", teacher)
    assert "ghost" not in {s["group_id"] for s in body["sessions"]}
    assert not await client.hexists(sessions_key("s-1"), "ghost")
    await client.aclose()
    await a.close()
    await b.close()


def test_stale_and_broken_records_are_dropped() -> None:
    now = 1000.0
    live, stale = fresh(
        {
            "a": json.dumps({"session_id": "a", "started_at": "2", "seen_at": now - 1}),
            "b": json.dumps({"session_id": "b", "started_at": "1", "seen_at": now - 1}),
            "old": json.dumps({"session_id": "old", "seen_at": now - 60}),
            "bad": "{not json",
        },
        now,
    )
    assert [d["session_id"] for d in live] == ["b", "a"]
    assert sorted(stale) == ["bad", "old"]


async def test_cors_preflight_for_allowed_origins_only(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(ALLOWED_ORIGINS="https://dash.example")
    url = f"{server.http}/api/v1/schools/s-1/budget/usage"
    ask = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with aiohttp.ClientSession() as session:
        async with session.options(url, headers={"Origin": "https://dash.example", **ask}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            assert "GET" in r.headers["Access-Control-Allow-Methods"]
        async with session.options(url, headers={"Origin": "https://evil.example", **ask}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        teacher = {"Authorization": f"Bearer {token(role='teacher')}"}
        async with session.get(url, headers={"Origin": "https://dash.example", **teacher}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        async with session.get(url, headers={"Origin": "https://evil.example", **teacher}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
