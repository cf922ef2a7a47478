"""The session's bounded outbox: order, coalesced notices, slow consumers."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.stream.outbox import NOTICE_INTERVAL, Outbox
from gateway.stream.protocol import warning


class Client:
    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.reading = asyncio.Event()
        self.reading.set()

    async def send(self, text: str) -> None:
        await self.reading.wait()
        self.received.append(json.loads(text))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _with_writer(outbox: Outbox) -> asyncio.Task[None]:
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(0)
    return task


async def test_messages_go_out_in_order() -> None:
    client, stuck = Client(), []
    outbox = Outbox(client.send, stuck.append)
    writer = await _with_writer(outbox)
    for seq in range(50):
        assert outbox.put({"type": "Transcript", "seq": seq})
    assert await outbox.flush(1.0)
    assert [m["seq"] for m in client.received] == list(range(50))
    writer.cancel()
    assert not stuck


async def test_repeated_warnings_are_coalesced_while_the_client_does_not_read() -> None:
    client, stuck, clock = Client(), [], Clock()
    client.reading.clear()
    outbox = Outbox(client.send, stuck.append, clock=clock)
    writer = await _with_writer(outbox)
    for _ in range(100_000):
        outbox.put(warning("BAD_MESSAGE", "junk"), key="Warning:BAD_MESSAGE")
    assert len(outbox) == 1 and outbox.coalesced == 99_999
    assert outbox.queued_bytes < 200
    client.reading.set()
    assert await outbox.flush(1.0)
    assert len(client.received) == 1
    # Sent a moment ago: the next one waits for the interval.
    assert not outbox.put(warning("BAD_MESSAGE", "junk"), key="Warning:BAD_MESSAGE")
    clock.now += NOTICE_INTERVAL
    assert outbox.put(warning("BAD_MESSAGE", "junk"), key="Warning:BAD_MESSAGE")
    writer.cancel()
    assert not stuck


async def test_a_client_that_does_not_read_is_stuck_past_the_byte_bound() -> None:
    client, stuck = Client(), []
    client.reading.clear()
    outbox = Outbox(client.send, stuck.append, max_bytes=10_000)
    writer = await _with_writer(outbox)
    accepted = 0
    while outbox.put({"type": "Transcript", "text": "x" * 100}):
        accepted += 1
    assert 50 < accepted < 100
    assert stuck and "bytes" in stuck[0]
    assert outbox.queued_bytes == 0 and not outbox.put({"type": "Transcript"})
    assert not await outbox.flush(0.1)
    writer.cancel()


async def test_a_write_that_stalls_makes_the_outbox_stuck() -> None:
    client, stuck, clock = Client(), [], Clock()
    client.reading.clear()
    outbox = Outbox(client.send, stuck.append, stall_seconds=20.0, clock=clock)
    writer = await _with_writer(outbox)
    assert outbox.put({"type": "Transcript", "seq": 0})
    await asyncio.sleep(0)  # the writer is now waiting on the client
    clock.now += 19.0
    assert outbox.put({"type": "Transcript", "seq": 1})
    clock.now += 1.0
    assert not outbox.put({"type": "Transcript", "seq": 2})
    assert stuck and "could not be written" in stuck[0]
    writer.cancel()


async def test_a_failed_connection_makes_the_outbox_stuck() -> None:
    stuck: list[str] = []

    async def broken(_: str) -> None:
        raise ConnectionResetError

    outbox = Outbox(broken, stuck.append)
    writer = await _with_writer(outbox)
    outbox.put({"type": "Begin"})
    await asyncio.wait_for(writer, 2.0)
    assert stuck == ["the connection failed (ConnectionResetError)"]


@pytest.mark.parametrize("n", [0, 3])
async def test_flush_waits_for_everything_queued(n: int) -> None:
    client, stuck = Client(), []
    outbox = Outbox(client.send, stuck.append)
    writer = await _with_writer(outbox)
    for i in range(n):
        outbox.put({"type": "Transcript", "seq": i})
    assert await outbox.flush(1.0)
    assert len(client.received) == n
    writer.cancel()
