"""Redis that answers but cannot serve the ledger: out of memory, or paused.

- a Redis at ``maxmemory`` still answers pings but refuses every reservation:
  readiness writes a probe key, so it says ``not_ready`` with Redis's reason, and
  ``stt_ledger_writable`` is 0 (the ``SttLedgerNotWritable`` alert);
- a reservation whose call timed out while Redis was paused may still be applied when
  Redis wakes: its hold is released as soon as Redis answers (a release that comes
  first leaves a tombstone), not when its lease runs out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.budget.ledger import Ledger, ScopeDay
from gateway.budget.policy import load_policy
from gateway.budget.service import BudgetService
from gateway.errors import BudgetUnavailable
from gateway.observability.metrics import Metrics
from gateway.redis import connection
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import connect, http_json, stream_and_close, t, token
from tests.support.redis_server import RedisServer


async def test_a_redis_out_of_memory_is_not_ready(
    make_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    server = await make_gateway(REDIS_URL=redis_server.url)
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        status, body = await http_json("GET", f"{server.http}/api/v1/ready")
        assert body["checks"]["redis"]["status"] == "ok"
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")  # every write is now refused: OOM
        assert await admin.ping()  # …while pings still answer
        status, body = await http_json("GET", f"{server.http}/api/v1/ready")
        assert status == 503 and body["status"] == "not_ready"
        redis_check = body["checks"]["redis"]
        assert redis_check["status"] == "down"
        assert redis_check["reason"].startswith("OutOfMemoryError: command not allowed")
        assert server.state.metrics.ledger_writable._value.get() == 0
        stream = await stream_and_close(server, tone(440, 1.0))
        reasons = [m.get("reason") for m in stream.of_type("Transcript")]
        assert reasons and set(reasons) == {"BUDGET_UNAVAILABLE"}
        await admin.config_set("maxmemory", "0")
        status, body = await http_json("GET", f"{server.http}/api/v1/ready")
        assert body["checks"]["redis"]["status"] == "ok"
        assert server.state.metrics.ledger_writable._value.get() == 1
    finally:
        await admin.config_set("maxmemory", "0")
        await admin.aclose()


async def _reserved(reader: aioredis.Redis, school_id: str) -> int:
    total = 0
    async for key in reader.scan_iter(match=f"{{stt}}:day:school:{school_id}:*"):
        total += int(await reader.hget(key, "reserved") or 0)
    return total


async def test_a_hold_applied_after_its_call_timed_out_is_released(
    redis_server: RedisServer,
) -> None:
    policy = load_policy(Path("config/budget-policy.dev.json"))
    client = connection.connect(redis_server.url)
    reader = aioredis.Redis.from_url(redis_server.url)
    service = BudgetService(
        policy, Ledger(client), mode="strict", metrics=Metrics(), lease_seconds=600
    )
    service.release_retry_delays = (0.1,) * 300
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(BudgetUnavailable):
                await service.reserve(policy.school("s-9"), "whisper-1", 30)
        finally:
            os.kill(pid, signal.SIGCONT)
        # Redis applies the queued reservation when it wakes; the gateway gives it back
        holds: list[bytes] = []

        async def applied_then_released() -> bool:
            holds[:] = [k async for k in reader.scan_iter(match="{stt}:hold:*")]
            return bool(holds) and await _reserved(reader, "s-9") == 0

        async with asyncio.timeout(t(30)):
            while not await applied_then_released():  # noqa: ASYNC110 - polls Redis's state
                await asyncio.sleep(0.05)
        assert {await reader.hget(k, "state") for k in holds} == {b"released"}
    finally:
        await service.close()
        await connection.close(client)
        await reader.aclose()


async def test_a_release_that_comes_first_leaves_a_tombstone(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    ledger = Ledger(client)
    try:
        assert await ledger.release("r-late") is False
        late = await ledger.reserve(
            scopes=[ScopeDay("school:s-9", "2026-12-02", 10_000)],
            amount_micro=500,
            school_id="s-9",
            model="whisper-1",
            now_ms=int(time.time() * 1000),
            lease_ms=60_000,
            rid="r-late",
        )
        assert not late.ok
        assert (await ledger.day("school:s-9", "2026-12-02")).get("reserved", 0) == 0
    finally:
        await client.aclose()


async def test_a_wiped_trail_is_caught_by_its_anchor_in_redis(
    make_gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The trail and its head deleted while the gateway was stopped: the next start finds
    the anchor in Redis further along, and records it (audit verify lists it)."""
    from gateway.auth.secret import resolve_audit_key
    from gateway.observability.audit_verify import verify

    trail = tmp_path / "trail" / "audit.log"
    env = {"REDIS_URL": redis_server.url, "AUDIT_LOG_PATH": str(trail), "DATA_DIR": tmp_path / "d"}
    first = await make_gateway(**env)
    for n in range(3):
        await http_json(
            "POST", f"{first.http}/api/v1/tokens", token(role="teacher"), {"group_id": f"g{n}"}
        )
    key = resolve_audit_key(first.state.settings)
    await first.stop()
    before = verify(trail, key)
    assert before.ok and before.records >= 4
    trail.unlink()
    trail.with_name("audit.log.head").unlink()
    second = await make_gateway(**env)
    await second.stop()
    records = trail.read_text().splitlines()
    assert '"audit.head_mismatch"' in records[1]
    assert f"anchored seq {before.records}" in records[1]
    after = verify(trail, key)
    assert after.ok and any("anchored" in note for note in after.notes)


@pytest.mark.parametrize("mode", ["strict", "advisory"])
async def test_with_the_ledger_down_strict_mode_refuses_at_the_handshake(
    make_gateway: GatewayFactory, redis_server: RedisServer, mode: str
) -> None:
    """protocol.md: no stream is admitted whose windows could only be dropped."""
    server = await make_gateway(REDIS_URL=redis_server.url, BUDGET_ENFORCEMENT_MODE=mode)
    redis_server.kill()
    stream = await connect(server, token())
    first = await stream.next()
    if mode == "strict":
        assert first["type"] == "Error" and first["code"] == "BUDGET_UNAVAILABLE"
        assert first["retry_after"] > 0
        await stream.collect()
        assert stream.close_code == 1013
    else:
        assert first["type"] == "Begin"
        await stream.finish()
        assert stream.close_code == 1000
    await stream.close()


async def test_a_lost_ledger_is_named_in_readiness_and_logged_once(
    make_gateway: GatewayFactory,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readiness says which Redis is down; the fleet's listener backs off and logs the
    outage once (and its end once), not once per attempt."""
    import json

    from gateway.fleet import claims as fleet
    from gateway.observability.logging import configure_logging

    monkeypatch.setattr(fleet, "LISTEN_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(fleet, "LISTEN_RETRY_MAX_SECONDS", 0.2)
    attempts = 0
    sleep = asyncio.sleep

    async def counted(delay: float) -> None:
        nonlocal attempts
        if delay in (0.05, 0.1, 0.2):
            attempts += 1
        await sleep(delay)

    configure_logging("debug", "json")
    try:
        server = await make_gateway(REDIS_URL=redis_server.url)
        status, body = await http_json("GET", f"{server.http}/api/v1/ready")
        assert body["checks"]["redis"]["target"] == f"127.0.0.1:{redis_server.port}"
        monkeypatch.setattr(fleet.asyncio, "sleep", counted)
        redis_server.kill()
        status, body = await http_json("GET", f"{server.http}/api/v1/ready")
        assert status == 503
        assert body["checks"]["redis"]["status"] == "down"
        assert body["checks"]["redis"]["target"] == f"127.0.0.1:{redis_server.port}"
        while attempts < 5:  # the listener retries on its own clock
            await sleep(0.05)
        redis_server.start()
        events: list[str] = []
        for _ in range(200):
            events += [
                json.loads(line).get("event", "")
                for line in capsys.readouterr().err.splitlines()
                if line.startswith("{")
            ]
            if "fleet.listen_restored" in events:
                break
            await sleep(0.05)
    finally:
        configure_logging("warning", "json")
    assert events.count("fleet.listen_failed") == 1, events
    assert events.count("fleet.listen_restored") == 1, events
