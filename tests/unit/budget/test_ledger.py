"""The ledger's guarantees, against a real Redis."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.budget.ledger import HOLD_TTL_SECONDS, Ledger, ScopeDay, day_key
from gateway.budget.policy import Policy, load_policy
from gateway.budget.scopes import scopes_for
from tests.support.redis_server import RedisServer


@pytest.fixture
async def ledger(redis_server: RedisServer) -> AsyncIterator[Ledger]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield Ledger(client)
    await client.aclose()


SCOPES = [ScopeDay("global", "2026-11-22", 10_000), ScopeDay("school:s", "2026-11-21", 1000)]


async def test_many_processes_never_exceed_the_limit(
    redis_server: RedisServer, ledger: Ledger
) -> None:
    limit = 5_000
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.ledger_worker",
            redis_server.url,
            "300",
            str(limit),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    committed = sum(int(out.split()[0]) for out, _ in outputs)
    refused = sum(int(out.split()[1]) for out, _ in outputs)
    school = await ledger.day("school:proof", "2026-11-21")
    assert refused > 0, "the limit was actually contended"
    assert school["spent"] == committed
    assert school["spent"] <= limit
    assert school["reserved"] == 0
    assert (await ledger.day("global", "2026-11-22"))["spent"] == committed
    assert (await ledger.day("district:d", "2026-11-22"))["spent"] == committed


async def test_refusal_names_the_full_scope_and_changes_nothing(ledger: Ledger) -> None:
    first = await ledger.reserve(
        scopes=SCOPES, amount_micro=900, school_id="s", model="m", now_ms=0, lease_ms=60_000
    )
    assert first.ok
    refused = await ledger.reserve(
        scopes=SCOPES, amount_micro=200, school_id="s", model="m", now_ms=0, lease_ms=60_000
    )
    assert not refused.ok and refused.refused_scope == "school:s"
    assert (await ledger.day("global", "2026-11-22"))["reserved"] == 900


async def test_commit_is_idempotent_and_overspend_counted(ledger: Ledger) -> None:
    r = await ledger.reserve(
        scopes=SCOPES, amount_micro=100, school_id="s", model="m", now_ms=0, lease_ms=60_000
    )
    assert r.reservation_id
    first = await ledger.commit(r.reservation_id, actual_micro=130, audio_ms=1000, model="m")
    second = await ledger.commit(r.reservation_id, actual_micro=130, audio_ms=1000, model="m")
    assert (first.status, first.overspend_micro, second.status) == (1, 30, 0)
    day = await ledger.day("school:s", "2026-11-21")
    assert (day["spent"], day["reserved"], day["overspend"], day["spent:m"]) == (130, 0, 30, 130)
    assert await ledger.release(r.reservation_id) is False


async def test_release_is_idempotent(ledger: Ledger) -> None:
    r = await ledger.reserve(
        scopes=SCOPES, amount_micro=100, school_id="s", model="m", now_ms=0, lease_ms=60_000
    )
    assert r.reservation_id
    assert await ledger.release(r.reservation_id) is True
    assert await ledger.release(r.reservation_id) is False
    day = await ledger.day("school:s", "2026-11-21")
    assert day["reserved"] == 0 and day.get("spent", 0) == 0


async def test_crashed_hold_is_reclaimed_after_its_lease(ledger: Ledger) -> None:
    r = await ledger.reserve(
        scopes=SCOPES, amount_micro=800, school_id="s", model="m", now_ms=1_000, lease_ms=5_000
    )
    assert r.ok  # …and the process that made it dies: never committed nor released
    early = await ledger.reserve(
        scopes=SCOPES, amount_micro=300, school_id="s", model="m", now_ms=5_999, lease_ms=5_000
    )
    assert not early.ok  # still held within the lease
    late = await ledger.reserve(
        scopes=SCOPES, amount_micro=300, school_id="s", model="m", now_ms=6_001, lease_ms=5_000
    )
    assert late.ok  # the lease ran out: the hold was reclaimed
    assert (await ledger.day("school:s", "2026-11-21"))["reserved"] == 300
    # A late commit of the reclaimed hold is still charged: never under-count.
    assert r.reservation_id
    late_commit = await ledger.commit(r.reservation_id, actual_micro=700, audio_ms=1, model="m")
    assert late_commit.status == 1
    day = await ledger.day("school:s", "2026-11-21")
    assert (day["spent"], day["reserved"]) == (700, 300)


async def test_reserved_at_23_59_59_lands_on_that_day(ledger: Ledger) -> None:
    policy: Policy = load_policy(Path("config/budget-policy.dev.json"))
    school = policy.school("s-1")  # America/Chicago, district d-1 (America/Chicago)
    before_midnight = datetime(2026, 11, 22, 5, 59, 59, tzinfo=UTC)  # 23:59:59 in Chicago
    scopes = scopes_for(policy, school, "whisper-1", before_midnight)
    assert [s.day for s in scopes] == ["2026-11-22", "2026-11-22", "2026-11-21", "2026-11-21"]
    r = await ledger.reserve(
        scopes=scopes,
        amount_micro=500,
        school_id="s-1",
        model="whisper-1",
        now_ms=0,
        lease_ms=60_000,
    )
    assert r.reservation_id
    # The commit happens after Chicago midnight: it still lands on the 21st.
    after = scopes_for(policy, school, "whisper-1", datetime(2026, 11, 22, 6, 0, 5, tzinfo=UTC))
    assert after[-1].day == "2026-11-22"
    await ledger.commit(r.reservation_id, actual_micro=500, audio_ms=5000, model="whisper-1")
    assert (await ledger.day("school:s-1", "2026-11-21"))["spent"] == 500
    assert (await ledger.day("school:s-1", "2026-11-22")) == {}


async def test_keys_share_one_hash_slot_and_expire(
    ledger: Ledger, redis_server: RedisServer
) -> None:
    r = await ledger.reserve(
        scopes=SCOPES, amount_micro=10, school_id="s", model="m", now_ms=0, lease_ms=60_000
    )
    assert r.reservation_id
    client = ledger.client
    keys = [k.decode() for k in await client.keys("*")]
    assert keys and all(k.startswith("{stt}:") for k in keys)
    assert await client.ttl(day_key("school:s", "2026-11-21")) >= 35 * 86400
    assert 0 < await client.ttl(f"{{stt}}:hold:{r.reservation_id}") <= HOLD_TTL_SECONDS


async def test_alerts_fire_once(ledger: Ledger) -> None:
    assert await ledger.fire_alerts(
        "s", "2026-11-21", [50, 80], {"fired_at": "t", "percent_used": 81}
    ) == [50, 80]
    assert await ledger.fire_alerts(
        "s", "2026-11-21", [50, 80, 100], {"fired_at": "t", "percent_used": 100}
    ) == [100]
    assert sorted(await ledger.fired_alerts("s", "2026-11-21")) == [50, 80, 100]


async def test_rpm_limiter_shares_one_budget_across_clients(redis_server: RedisServer) -> None:
    from gateway.stt.rpm import RpmLimiter

    clock_now = [120.0]
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    limiters = [RpmLimiter(c, 3, clock=lambda: clock_now[0]) for c in clients]
    for i in range(3):
        await limiters[i % 2].acquire()  # 3 requests in minute 2, from two "replicas"
    waiter = asyncio.create_task(limiters[0].acquire())
    await asyncio.sleep(0.1)
    assert not waiter.done() and limiters[0].waited == 1  # the 4th waits for the next minute
    waiter.cancel()
    for c in clients:
        await c.aclose()


async def test_overspend_is_counted_and_logged_beyond_rounding(redis_server: RedisServer) -> None:
    from structlog.testing import capture_logs

    from gateway.budget.service import BudgetService
    from gateway.observability.metrics import Metrics

    policy = load_policy(Path("config/budget-policy.dev.json"))
    client = aioredis.Redis.from_url(redis_server.url)
    metrics = Metrics()
    service = BudgetService(
        policy, Ledger(client), mode="strict", metrics=metrics, lease_seconds=60
    )
    school = policy.school("s-9")
    with capture_logs() as logs:
        hold = await service.reserve(school, "whisper-1", 1.9)  # 190 µ$
        await service.commit(hold, 1.905)  # 190.5 → 191 µ$: rounding, counted, not logged
        hold = await service.reserve(school, "whisper-1", 1.0)  # 100 µ$
        await service.commit(hold, 2.0)  # 200 µ$: logged
        hold = await service.reserve(school, "whisper-1", 1.0)
        await service.commit(hold, 6.0)  # 600 µ$ > 5×: critical
    overspend = [
        (e["log_level"], e["actual_micro"]) for e in logs if e["event"] == "budget.overspend"
    ]
    assert overspend == [("warning", 200), ("critical", 600)]
    assert metrics.budget_overspend._value.get() == pytest.approx((1 + 100 + 500) / 1e6)
    await service.close()
    await client.aclose()


async def test_a_settings_change_on_another_replica_applies_to_the_next_reservation(
    redis_server: RedisServer,
) -> None:
    """Replica A keeps a school's settings cached for its windows; B changes them. A's next
    reservation comes back with the stored settings and is made again under them — lower
    (refused) and higher (taken) — with nothing left reserved by the first attempt."""
    from gateway.budget.service import BudgetService
    from gateway.errors import BudgetRefused
    from gateway.observability.metrics import Metrics

    policy = load_policy(Path("config/budget-policy.dev.json"))
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    a, b = (
        BudgetService(policy, Ledger(c), mode="strict", metrics=Metrics(), lease_seconds=60)
        for c in clients
    )
    assert b.ledger is not None
    school = await a.school("s-9", for_window=True)
    assert school.daily_limit_micro == 5_000_000
    await a.commit(await a.reserve(school, "whisper-1", 60), 60)  # 6,000 µ$

    await b.ledger.set_overrides("s-9", {"daily_limit_usd": 0.01})
    await b.settings_changed("s-9")
    stale = await a.school("s-9", for_window=True)
    assert stale.daily_limit_micro == 5_000_000  # A has not read them: a window costs no read
    with pytest.raises(BudgetRefused):
        await a.reserve(stale, "whisper-1", 60)  # 12,000 µ$ > 10,000

    await b.ledger.set_overrides("s-9", {"daily_limit_usd": 1})
    await b.settings_changed("s-9")
    stale = await a.school("s-9", for_window=True)
    assert stale.daily_limit_micro == 10_000  # as A's last reservation returned them
    hold = await a.reserve(stale, "whisper-1", 60)
    assert hold.school.daily_limit_micro == 1_000_000 and hold.reservation_id is not None
    await a.commit(hold, 60)
    day = await b.ledger.day("school:s-9", hold.school_day)
    assert (day["spent"], day["reserved"]) == (12_000, 0)
    for c in clients:
        await c.aclose()
