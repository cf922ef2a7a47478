"""The ledger on a real Redis Cluster and behind Sentinel (Debian's redis-server)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot
from structlog.testing import capture_logs

from gateway.budget.ledger import Ledger, ScopeDay
from gateway.errors import LedgerNotReplicated
from gateway.fleet.presence import Presence
from gateway.redis.connection import close, connect, parse_sentinel_url, redis_target
from gateway.simulated.whisper import FakeWhisper
from gateway.stt.rpm import RpmLimiter
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.budget import teacher
from tests.support.helpers import (
    GatewayServer,
    Stream,
    eventually,
    http_json,
    spawn_gateway,
    token,
    write_policy,
)
from tests.support.helpers import connect as connect_stream
from tests.support.redis_topologies import SentinelDeployment, redis_cluster

pytestmark = pytest.mark.slow

SLOT = key_slot(b"{stt}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[int]]:
    with redis_cluster(tmp_path / "cluster") as ports:
        yield ports


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment(tmp_path / "sentinel")
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def test_sentinel_urls_are_read_strictly() -> None:
    address = parse_sentinel_url("redis://:s%40cret@10.0.0.1:26379,[::1]:26380/2")
    assert address.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (address.password, address.db, address.tls) == ("s@cret", 2, False)
    for bad in ("http://h:1", "redis://h", "redis://h:x", "redis://h:1/db"):
        with pytest.raises(ValueError, match=r"sentinel|database|redis://"):
            parse_sentinel_url(bad)


def test_the_target_named_in_readiness_never_carries_the_password() -> None:
    assert redis_target("redis://:s%40cret@10.0.0.1:26379,[::1]:26380/2") == (
        "10.0.0.1:26379,[::1]:26380"
    )
    assert redis_target("rediss://user:pw@redis.internal/0?ssl_cert_reqs=none") == (
        "redis.internal:6379"
    )
    assert redis_target("redis://127.0.0.1:6380") == "127.0.0.1:6380"
    assert redis_target("unix://:pw@/data/redis/redis.sock?db=0") == "unix:/data/redis/redis.sock"


async def test_every_ledger_call_works_on_a_cluster_and_stays_in_one_slot(
    cluster: list[int],
) -> None:
    """Every script and command the gateway sends runs on a real three-primary cluster
    (which refuses a script naming keys of two slots), and every key is in ``{stt}``'s slot."""
    client = connect(f"redis://127.0.0.1:{cluster[0]}", "cluster")
    ledger = Ledger(client)
    scopes = [ScopeDay("global", "2026-11-23", 10_000), ScopeDay("school:c-1", "2026-11-23", 500)]
    hold = await ledger.reserve(
        scopes=scopes, amount_micro=300, school_id="c-1", model="whisper-1", now_ms=1, lease_ms=60
    )
    assert hold.ok and hold.reservation_id is not None
    refused = await ledger.reserve(
        scopes=scopes, amount_micro=300, school_id="c-1", model="whisper-1", now_ms=2, lease_ms=60
    )
    assert not refused.ok and refused.refused_scope == "school:c-1"
    done = await ledger.commit(hold.reservation_id, actual_micro=250, audio_ms=5000, model="w")
    assert (done.status, done.school_spent, done.school_reserved) == (1, 250, 0)
    await ledger.set_overrides("c-1", {"daily_limit_usd": 1})
    assert await ledger.overrides("c-1") == {"daily_limit_usd": 1}
    again = await ledger.reserve(
        scopes=scopes, amount_micro=10, school_id="c-1", model="whisper-1", now_ms=3, lease_ms=60
    )
    assert again.settings is not None and again.reservation_id is not None
    assert await ledger.release(again.reservation_id)
    assert await ledger.fire_alerts("c-1", "2026-11-23", [50], {"x": 1}) == [50]
    assert await ledger.fire_alerts("c-1", "2026-11-23", [50], {"x": 1}) == []
    assert (await ledger.day("school:c-1", "2026-11-23"))["spent"] == 250
    assert await ledger.active_schools(0) == ["c-1"]
    assert await ledger.reclaim(10**13) == 0
    await RpmLimiter(client, 10).acquire()

    class Session:
        school_id, session_id = "c-1", "sess-1"

        def presence(self) -> dict[str, object]:
            return {"session_id": self.session_id, "started_at": "x"}

    presence = Presence(client)
    await presence.publish([Session()])
    assert [d["session_id"] for d in await presence.school("c-1", [])] == ["sess-1"]
    keys: list[str] = []
    for port in cluster:
        node = redis.Redis(port=port)
        keys += [k.decode() for k in node.keys("*")]
        node.close()
    assert len(keys) >= 8 and {key_slot(k.encode()) for k in keys} == {SLOT}, keys
    await close(client)


async def test_a_gateway_on_a_cluster_charges_its_windows(
    cluster: list[int], make_gateway: GatewayFactory
) -> None:
    server = await make_gateway(REDIS_URL=f"redis://127.0.0.1:{cluster[1]}", REDIS_MODE="cluster")
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["checks"]["redis"]["topology"] == "cluster"
    stream = await connect_stream(server, token())
    await stream.next()
    await stream.send_audio(tone(440, 2.0))
    messages = await stream.finish()
    await stream.close()
    ended = messages[-1]
    assert ended["type"] == "Termination" and ended["transcribed"] == 2
    status, doc = await http_json(
        "GET", f"{server.http}/api/v1/schools/s-1/budget/usage", teacher("s-1")
    )
    assert status == 200 and ended["cost_usd"] > 0
    assert doc["spent_usd"] == pytest.approx(ended["cost_usd"])


async def test_a_sentinel_failover_mid_stream_loses_no_charge_and_bills_none_twice(
    sentinel: SentinelDeployment, make_gateway: GatewayFactory
) -> None:
    """The primary is killed while a classroom streams; the sentinel promotes the replica.
    Windows whose reservation met the outage are dropped (never sent, never billed); charges
    that could not be written are journaled and replayed on the new primary. In the end the
    ledger holds exactly what the transcripts say was billed, and nothing stays reserved."""
    server = await make_gateway(
        REDIS_URL=sentinel.url, REDIS_MODE="sentinel", REDIS_SENTINEL_MASTER=sentinel.MASTER
    )
    server.fake.behaviour.latency_ms = 1500  # type: ignore[attr-defined]  # windows in flight
    stream = await connect_stream(server, token())
    await stream.next()
    sender = asyncio.create_task(stream.send_audio(tone(440, 12.0), pace=0.1))
    await asyncio.sleep(4.0)
    with capture_logs() as logs:
        old = await asyncio.to_thread(sentinel.kill_primary)
        new = await asyncio.to_thread(sentinel.wait_for_failover, old)
        assert new == sentinel.replica_port
        await sender
        await asyncio.sleep(2.0)
    events = [e["event"] for e in logs]
    assert "budget.commit_deferred" in events and "budget.ledger_unreachable" in events
    await stream.send_json({"type": "CloseStream"})
    messages = await stream.collect(timeout=60)
    await stream.close()
    ended = messages[-1]
    assert ended["type"] == "Termination"
    windows = [m for m in messages if m["type"] == "Transcript"]
    assert len(windows) == ended["windows"] == 12 and ended["transcribed"] >= 6
    billed = sum(m["billed_seconds"] for m in windows if m["status"] == "ok")
    assert ended["cost_usd"] == pytest.approx(billed / 60 * 0.006)  # whisper-1 in the policy
    journal = server.state.budget.journal
    assert journal is not None
    await eventually(lambda: len(journal) == 0, timeout=30)
    status, doc = await http_json(
        "GET", f"{server.http}/api/v1/schools/s-1/budget/usage", teacher("s-1")
    )
    assert status == 200
    assert doc["spent_usd"] == pytest.approx(ended["cost_usd"])
    assert doc["reserved_usd"] == 0


async def test_a_charge_no_connected_replica_confirms_stays_owed_and_counts_once(
    sentinel: SentinelDeployment,
) -> None:
    """With a replica to wait for, a charge counts once the replica has it: while the replica
    is frozen the commit raises (the service journals it); committed again once it thaws,
    the ledger charges it once."""
    client = connect(sentinel.url, "sentinel", sentinel.MASTER)
    ledger = Ledger(client, replicas=1)
    scopes = [ScopeDay("school:r-1", "2026-11-23", None)]
    hold = await ledger.reserve(
        scopes=scopes, amount_micro=300, school_id="r-1", model="whisper-1", now_ms=1, lease_ms=60
    )
    assert hold.reservation_id is not None
    replica = sentinel.procs[sentinel.replica_port]
    replica.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(LedgerNotReplicated):
            await ledger.commit(hold.reservation_id, actual_micro=250, audio_ms=1, model="w")
    finally:
        replica.send_signal(signal.SIGCONT)
    again = await ledger.commit(hold.reservation_id, actual_micro=250, audio_ms=1, model="w")
    assert again.status == 0  # already taken by the primary: not charged twice
    day = await ledger.day("school:r-1", "2026-11-23")
    assert (day["spent"], day["reserved"]) == (250, 0)
    await close(client)


async def test_two_gateway_processes_on_a_cluster_act_as_one(
    cluster: list[int], fake_whisper: FakeWhisper, tmp_path: Path
) -> None:
    """Two gateway processes on a real three-primary cluster: a school's cap of 30 holds
    exactly under 40 concurrent connects spread over both; its alerts fire once; a group
    moving from one replica to the other replaces its session there."""
    policy = write_policy(
        tmp_path / "policy.json",
        downgrade=[],
        schools={"s-1": {"daily_limit_usd": 0.0004, "max_concurrent_streams": 30}},
    )
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{cluster[0]}",
        "REDIS_MODE": "cluster",
        "BUDGET_POLICY_PATH": policy,
    }
    procs = [await spawn_gateway(fake_whisper, tmp_path / f"gw{i}", **env) for i in range(2)]
    try:
        servers = [
            GatewayServer(None, None, await p.listening(), fake_whisper)  # type: ignore[arg-type]
            for p in procs
        ]
        streams = await asyncio.gather(
            *(connect_stream(servers[i % 2], token(group=f"g-{i}")) for i in range(40))
        )
        firsts = await asyncio.gather(*(s.next() for s in streams))
        admitted = [s for s, m in zip(streams, firsts, strict=True) if m["type"] == "Begin"]
        refused = [m for m in firsts if m["type"] == "Error"]
        assert len(admitted) == 30 and len(refused) == 10
        assert {m["code"] for m in refused} == {"OVERLOADED"}

        async def speak(stream: Stream) -> None:
            await stream.send_audio(tone(440, 1.0))
            await stream.finish()

        await asyncio.gather(*(speak(s) for s in admitted[:6]))  # 6 windows: past the limit
        moved_from = admitted[-1]  # sent no audio: its session is still open
        index = streams.index(moved_from)
        moved = await connect_stream(servers[(index + 1) % 2], token(group=f"g-{index}"))
        assert (await moved.next())["type"] == "Begin"
        await moved_from.collect()
        assert moved_from.close_code == 4009
        for s in (*streams, moved):
            await s.close()

        def fired() -> list[int]:
            lines = [ln for p in procs for ln in p.lines if ln.get("event") == "budget.alert_fired"]
            return sorted(ln["threshold"] for ln in lines)

        try:
            await eventually(lambda: fired() == [50, 80, 100], timeout=20)
        except AssertionError:
            events = [ln.get("event") for p in procs for ln in p.lines]
            raise AssertionError(f"fired {fired()}; events {sorted(set(events))}") from None
    finally:
        for p in procs:
            await p.stop()
