"""Ids, token lifetimes and page links: what an attacker could put in a token or a URL.

- ids are 1–64 characters of ``A-Z a-z 0-9 . _ -``: checked when a token is read or
  minted (API and command line) and when a policy is loaded; the ledger's scripts
  take each key whole, so even an id that got past those checks charges only itself;
- an ``exp`` past ``TOKEN_MAX_TTL_SECONDS`` (or past year 9999) is treated as the bound;
- links made by ``POST /api/v1/tokens`` carry a single-use code, redeemed once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import redis.asyncio as aioredis

from gateway.auth.tokens import mint, verify
from gateway.budget.ledger import Ledger, ScopeDay
from gateway.budget.policy import problems
from gateway.errors import InvalidToken
from gateway.ids import valid_id
from tests.conftest import GatewayFactory
from tests.support.helpers import SECRET, GatewayServer, connect, http_json, token
from tests.support.redis_server import RedisServer

INJECTED = "evil\n{stt}:day:school:victim"
DAY = "2026-11-21"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("s-1", True),
        ("School_9.north", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        (INJECTED, False),
        ("a b", False),
        ("s:1", False),
        ("s{1}", False),
        ("é", False),
        (7, False),
    ],
)
def test_ids_are_checked_characters(value: object, ok: bool) -> None:
    assert valid_id(value) is ok


def _forged(**claims: object) -> str:
    payload = {"role": "student", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.mark.parametrize("claim", ["school_id", "group_id", "district_id"])
def test_a_token_with_an_injected_id_is_refused(claim: str) -> None:
    claims = {"school_id": "s-1", "group_id": "g-1", claim: INJECTED}
    with pytest.raises(InvalidToken, match=claim):
        verify(_forged(**claims), SECRET)


def test_minting_refuses_bad_ids_and_too_long_lifetimes() -> None:
    with pytest.raises(ValueError, match="school_id"):
        mint(SECRET, school_id=INJECTED, group_id="g-1")
    with pytest.raises(ValueError, match="group_id"):
        mint(SECRET, school_id="s-1", group_id="g 1")
    with pytest.raises(ValueError, match="TOKEN_MAX_TTL_SECONDS"):
        mint(SECRET, school_id="s-1", group_id="g-1", ttl_seconds=7200, max_ttl_seconds=3600)


def test_a_policy_with_a_bad_school_or_district_id_is_refused() -> None:
    base = {
        "version": 1,
        "pricing_usd_per_minute": {"whisper-1": 0.006},
        "defaults": {"school": {"daily_limit_usd": 5}},
        "districts": {"d 1": {}},
        "schools": {INJECTED: {"daily_limit_usd": 1}, "s-2": {"district_id": "d\n1"}},
    }
    found = " ".join(problems(base))
    assert "does not match" in found
    assert found.count("does not match") >= 3


async def test_the_ledger_charges_an_odd_id_to_itself_only(redis_server: RedisServer) -> None:
    """The scripts take each key whole: an id carrying a newline and another school's key
    (were it ever to pass the checks) charges and releases its own scope, never the victim's."""
    client = aioredis.Redis.from_url(redis_server.url)
    ledger = Ledger(client)
    try:
        scopes = [ScopeDay("global", DAY, 10_000), ScopeDay(f"school:{INJECTED}", DAY, 1000)]
        for finish in ("commit", "release"):
            held = await ledger.reserve(
                scopes=scopes,
                amount_micro=100,
                school_id=INJECTED,
                model="whisper-1",
                now_ms=int(time.time() * 1000),
                lease_ms=60_000,
            )
            assert held.ok and held.reservation_id is not None
            if finish == "commit":
                await ledger.commit(held.reservation_id, actual_micro=80, audio_ms=800, model="m")
            else:
                await ledger.release(held.reservation_id)
        victim = await ledger.day("school:victim", DAY)
        assert victim == {}, victim
        own = await ledger.day(f"school:{INJECTED}", DAY)
        assert (own["spent"], own["reserved"]) == (80, 0)
        assert (await ledger.day("global", DAY))["reserved"] == 0
    finally:
        await client.aclose()


async def test_an_injected_school_id_gets_4001_and_the_victim_is_untouched(
    gateway: GatewayServer,
) -> None:
    stream = await connect(gateway, _forged(school_id=INJECTED, group_id="g-1"))
    first = await stream.next()
    assert first["type"] == "Error" and first["code"] == "UNAUTHORIZED"
    await stream.collect()
    assert stream.close_code == 4001
    await stream.close()
    status, usage = await http_json(
        "GET",
        f"{gateway.http}/api/v1/schools/victim/budget/usage",
        token("victim", None, role="teacher"),
    )
    assert status == 200
    assert usage["spent_usd"] == 0 and usage["reserved_usd"] == 0


async def test_the_tokens_api_refuses_bad_ids_and_long_lifetimes(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway(TOKEN_MAX_TTL_SECONDS=3600)
    url = f"{server.http}/api/v1/tokens"
    teacher = token(role="teacher")
    status, body = await http_json("POST", url, teacher, {"group_id": INJECTED})
    assert status == 400 and body["error"]["details"][0]["field"] == "group_id"
    status, body = await http_json("POST", url, teacher, {"group_id": "g-1", "ttl_seconds": 7200})
    assert status == 400 and "TOKEN_MAX_TTL_SECONDS" in body["error"]["message"]
    status, body = await http_json(
        "POST", url, token(None, None, role="platform_admin"), {"group_id": "g", "school_id": "a b"}
    )
    assert status == 400


def test_the_command_line_refuses_a_bad_id(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "AUTH_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "--school", "s:1", "--group", "g-1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "school_id must be 1-64 characters" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_far_future_exp_is_treated_as_the_bound() -> None:
    now = 1_800_000_000
    for exp in (now + 10 * 86400, 253402300800 * 10, 1e300):
        claims = verify(_forged(school_id="s", group_id="g", exp=exp), SECRET, now=now)
        assert claims.exp == now + 86400
        assert claims.expires_at.year == 2027
    with pytest.raises(InvalidToken):
        verify(_forged(school_id="s", group_id="g", exp=10**20), SECRET, max_ttl_seconds=None)


async def test_a_year_10000_token_gets_begin_with_the_bounded_expiry(
    gateway: GatewayServer,
) -> None:
    stream = await connect(gateway, _forged(school_id="s-1", group_id="g-1", exp=10**12))
    begin = await stream.next()
    assert begin["type"] == "Begin"
    assert begin["expires_at"] < "2100"
    await stream.finish()
    assert stream.close_code == 1000
    await stream.close()


async def test_a_page_link_code_is_redeemed_once(gateway: GatewayServer) -> None:
    status, made = await http_json(
        "POST", f"{gateway.http}/api/v1/tokens", token(role="teacher"), {"group_id": "table-2"}
    )
    assert status == 201
    assert "#code=" in made["url"] and made["token"] not in made["url"]
    assert made["url_expires_at"] < made["expires_at"]  # the link, 10 min; the token, 1 h
    code = made["url"].split("#code=", 1)[1]
    redeem = f"{gateway.http}/api/v1/tokens/redeem"
    status, body = await http_json("POST", redeem, None, {"code": code})
    assert status == 200 and body["token"] == made["token"]
    assert body["expires_at"] == made["expires_at"]
    for _ in range(2):
        status, body = await http_json("POST", redeem, None, {"code": code})
        assert status == 401 and body["error"]["code"] == "INVALID_CODE"
    status, body = await http_json("POST", redeem, None, {"code": "made-up"})
    assert status == 401
    assert code not in gateway.state.audit.path.read_text()


async def test_a_link_code_expires(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(LINK_CODE_TTL_SECONDS=10)
    codes = server.state.link_codes
    code = await codes.issue("a-token", "2030-01-01T00:00:00Z")
    redis = server.state.redis
    assert redis is not None
    # Redis expires the key itself, after LINK_CODE_TTL_SECONDS; the key is not the code.
    keys = [k async for k in redis.scan_iter(match="{stt}:link:*")]
    assert len(keys) == 1 and code.encode() not in keys[0]
    assert 0 < await redis.ttl(keys[0]) <= 10
    await redis.delete(keys[0])  # what Redis does when the time is up
    assert await codes.redeem(code) is None


def test_link_codes_in_memory_expire_on_an_injected_clock() -> None:
    import asyncio

    from gateway.auth.link_codes import LinkCodes

    now = [0.0]
    codes = LinkCodes(None, 600, clock=lambda: now[0])

    async def run() -> None:
        first = await codes.issue("t1", "e")
        second = await codes.issue("t2", "e")
        redeemed = await codes.redeem(first)
        assert redeemed is not None and redeemed.token == "t1"
        assert await codes.redeem(first) is None
        now[0] = 601.0
        assert await codes.redeem(second) is None

    asyncio.run(run())
