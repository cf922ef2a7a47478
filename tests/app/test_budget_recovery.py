"""Never under-count: charges survive a Redis crash, a gateway stop, and expired holds."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.budget.journal import CommitJournal, PendingCommit
from gateway.budget.ledger import Ledger, ScopeDay, day_key, hold_key
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.budget import WINDOW_MICRO, teacher, usage
from tests.support.helpers import (
    GatewayServer,
    eventually,
    http_json,
    open_stream,
    t,
    token,
)
from tests.support.redis_server import RedisServer


def _entry(rid: str, actual: int = 100) -> PendingCommit:
    return PendingCommit(
        rid, actual, 1000, "whisper-1", ("k1", "k2"), "s-1", None, "2026-11-23", 100
    )


def test_the_journal_keeps_what_is_pending_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = CommitJournal(path)
    for rid in ("a", "b", "c"):
        journal.add(_entry(rid))
    journal.done("b")
    assert [e.id for e in CommitJournal(path).pending] == ["a", "c"]
    with path.open("a") as handle:
        handle.write('{"op": "commit", "id": "d", "actu')  # cut by a crash mid-write
    reopened = CommitJournal(path)
    assert [e.id for e in reopened.pending] == ["a", "c"]
    assert reopened.pending[0].keys == ("k1", "k2")
    reopened.done("a")
    reopened.done("c")
    assert path.read_text() == "" and not CommitJournal(path).pending


async def test_a_commit_whose_hold_expired_is_charged_once(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    ledger = Ledger(client)
    scopes = [ScopeDay("global", "2026-11-23", None), ScopeDay("school:x", "2026-11-23", 10_000)]
    held = await ledger.reserve(
        scopes=scopes, amount_micro=100, school_id="x", model="whisper-1", now_ms=0, lease_ms=1
    )
    assert held.ok and held.reservation_id is not None
    await client.delete(hold_key(held.reservation_id))  # the hold's 48 h TTL ran out
    for _ in range(2):
        await ledger.commit(
            held.reservation_id,
            actual_micro=120,
            audio_ms=1000,
            model="whisper-1",
            day_keys=held.day_keys,
            amount_micro=100,
        )
    school = await ledger.day("school:x", "2026-11-23")
    assert school["spent"] == 120 and school["overspend"] == 20
    assert (await ledger.day("global", "2026-11-23"))["spent"] == 120
    assert held.day_keys[-1] == day_key("school:x", "2026-11-23")
    await client.aclose()


async def _windows_in_flight_while_redis_dies(
    server: GatewayServer, kill: object, windows: int = 3
) -> dict[str, object]:
    """Stream ``windows`` one-second windows; kill the ledger while they are being transcribed
    (reserved, not yet committed); return the Termination."""
    server.fake.behaviour.latency_ms = 1500
    stream = await open_stream(server, token("s-1", "crash"))
    for _ in range(windows):
        await stream.send_audio(tone(440, 1.0))
        await stream.send_json({"type": "Finalize"})
    await eventually(lambda: server.fake.in_flight == windows, timeout=10)
    kill()  # type: ignore[operator]
    await stream.send_json({"type": "CloseStream"})
    messages = await stream.collect(timeout=60)
    await stream.close()
    transcripts = [m for m in messages if m["type"] == "Transcript"]
    assert [m["status"] for m in transcripts] == ["ok"] * windows, transcripts
    assert messages[-1]["type"] == "Termination"
    return messages[-1]


async def test_a_killed_embedded_redis_is_restarted_and_nothing_goes_unbilled(
    make_gateway: GatewayFactory,
) -> None:
    server = await make_gateway()
    embedded = server.state.embedded
    assert embedded is not None and embedded._process is not None
    pid = embedded._process.pid
    ended = await _windows_in_flight_while_redis_dies(server, lambda: os.kill(pid, signal.SIGKILL))
    await eventually(lambda: embedded.restarts == 1, timeout=15)
    journal = server.state.budget.journal
    assert journal is not None
    await eventually(lambda: len(journal) == 0, timeout=30)
    doc = await usage(server, "s-1")
    assert doc["spent_usd"] == pytest.approx(3 * WINDOW_MICRO / 1_000_000)
    assert doc["spent_usd"] == pytest.approx(ended["cost_usd"])
    assert doc["reserved_usd"] == 0
    status, ready = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and ready["checks"]["redis"]["status"] == "ok"


async def test_charges_owed_at_shutdown_are_replayed_by_the_next_start(
    make_gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    data = str(tmp_path / "kept")
    first = await make_gateway(REDIS_URL=redis_server.url, DATA_DIR=data)
    ended = await _windows_in_flight_while_redis_dies(first, redis_server.kill)
    journal = first.state.budget.journal
    assert journal is not None and len(journal) == 3
    await first.stop()  # Redis still down: the charges stay in the journal
    redis_server.start()
    second = await make_gateway(REDIS_URL=redis_server.url, DATA_DIR=data)
    replayed = second.state.budget.journal
    assert replayed is not None
    await eventually(lambda: len(replayed) == 0, timeout=30)
    status, doc = await http_json(
        "GET", f"{second.http}/api/v1/schools/s-1/budget/usage", teacher("s-1")
    )
    assert status == 200
    assert doc["spent_usd"] == pytest.approx(ended["cost_usd"])
    assert doc["spent_usd"] == pytest.approx(3 * WINDOW_MICRO / 1_000_000)
    assert doc["reserved_usd"] == 0
    await asyncio.sleep(t(0.1))


async def test_zero_priced_holds_commit_release_and_expire(redis_server: RedisServer) -> None:
    """A model priced 0 (a local one) holds 0: Lua's -0 must not break the scripts."""
    client = aioredis.from_url(redis_server.url)
    ledger = Ledger(client)
    scopes = [ScopeDay("global", "2026-11-23", None), ScopeDay("school:z", "2026-11-23", 100)]

    async def hold() -> str:
        held = await ledger.reserve(
            scopes=scopes, amount_micro=0, school_id="z", model="tiny.en", now_ms=0, lease_ms=10
        )
        assert held.ok and held.reservation_id is not None
        return held.reservation_id

    committed = await ledger.commit(await hold(), actual_micro=0, audio_ms=5000, model="tiny.en")
    assert committed.status == 1
    assert await ledger.release(await hold())
    await hold()
    assert await ledger.reclaim(now_ms=1000) == 1
    school = await ledger.day("school:z", "2026-11-23")
    assert school["spent"] == 0 and school["reserved"] == 0 and school["audio_ms"] == 5000
    await client.aclose()
