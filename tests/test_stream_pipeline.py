from __future__ import annotations

import asyncio

import pytest

from gateway.stream.pipeline import Outcome, PendingWindow, WindowPipeline
from gateway.stream.windowing import Window


def _window(seq: int, seconds: float = 1.0) -> Window:
    rate = 1000
    n = int(seconds * rate)
    return Window(seq, seq * n, (seq + 1) * n, rate, bytes(2 * n), False, True)


class _Harness:
    def __init__(self, max_in_flight: int = 3, max_pending: float = 100.0) -> None:
        self.gates: dict[int, asyncio.Future[Outcome]] = {}
        self.delivered: list[tuple[int, Outcome]] = []
        self.started: list[int] = []
        self.pending_total = 0.0
        self.pipeline = WindowPipeline(
            self.process,
            self.deliver,
            max_in_flight=max_in_flight,
            max_pending_seconds=max_pending,
            on_pending_change=self._pending,
        )

    def _pending(self, delta: float) -> None:
        self.pending_total += delta

    async def process(self, pending: PendingWindow) -> Outcome:
        seq = pending.window.seq
        self.started.append(seq)
        self.gates[seq] = asyncio.get_running_loop().create_future()
        return await self.gates[seq]

    async def deliver(self, pending: PendingWindow, outcome: Outcome) -> None:
        self.delivered.append((pending.window.seq, outcome))

    def answer(self, seq: int) -> None:
        self.gates[seq].set_result(Outcome("ok", "m", text=f"w{seq}"))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_out_of_order_answers_are_delivered_in_order() -> None:
    h = _Harness()
    runner = asyncio.create_task(h.pipeline.deliver_forever())
    for seq in range(3):
        h.pipeline.submit(_window(seq), "m")
    await _settle()
    h.answer(2)
    h.answer(1)
    await _settle()
    assert h.delivered == []
    h.answer(0)
    assert await h.pipeline.wait_delivered(1.0)
    assert [s for s, _ in h.delivered] == [0, 1, 2]
    assert h.pending_total == pytest.approx(0)
    runner.cancel()


async def test_in_flight_bound_and_order_of_starts() -> None:
    h = _Harness(max_in_flight=2)
    runner = asyncio.create_task(h.pipeline.deliver_forever())
    for seq in range(5):
        h.pipeline.submit(_window(seq), "m")
    await _settle()
    assert h.started == [0, 1]
    h.answer(1)
    await _settle()
    assert h.started == [0, 1, 2]
    for seq in (0, 2, 3, 4):
        await _settle()
        h.answer(seq)
    assert await h.pipeline.wait_delivered(1.0)
    assert h.started == [0, 1, 2, 3, 4]
    runner.cancel()


async def test_backlog_drops_oldest_unanswered_and_cancels_its_work() -> None:
    h = _Harness(max_in_flight=1, max_pending=2.5)
    runner = asyncio.create_task(h.pipeline.deliver_forever())
    h.pipeline.submit(_window(0), "m")
    await _settle()
    assert h.started == [0]
    h.pipeline.submit(_window(1), "m")
    h.pipeline.submit(_window(2), "m")  # 3 s unanswered > 2.5 s: window 0 goes
    await _settle()
    assert h.gates[0].cancelled()
    assert h.pipeline.unanswered_seconds == pytest.approx(2.0)
    assert h.started == [0, 1]
    h.answer(1)
    await _settle()
    h.answer(2)
    assert await h.pipeline.wait_delivered(1.0)
    assert [(s, o.status, o.reason) for s, o in h.delivered] == [
        (0, "dropped", "BACKLOG"),
        (1, "ok", None),
        (2, "ok", None),
    ]
    runner.cancel()


async def test_pre_resolved_windows_skip_processing() -> None:
    h = _Harness()
    runner = asyncio.create_task(h.pipeline.deliver_forever())
    h.pipeline.submit(_window(0), "m", Outcome("silence", "m"))
    h.pipeline.submit(_window(1), "m")
    await _settle()
    assert h.started == [1]
    h.answer(1)
    assert await h.pipeline.wait_delivered(1.0)
    assert [o.status for _, o in h.delivered] == ["silence", "ok"]
    runner.cancel()


async def test_drop_unanswered_and_timeout() -> None:
    h = _Harness()
    runner = asyncio.create_task(h.pipeline.deliver_forever())
    h.pipeline.submit(_window(0), "m")
    assert not await h.pipeline.wait_delivered(0.05)
    h.pipeline.drop_unanswered("SHUTDOWN")
    assert await h.pipeline.wait_delivered(1.0)
    assert h.delivered[0][1].reason == "SHUTDOWN"
    runner.cancel()


async def test_abort_returns_undelivered() -> None:
    h = _Harness()
    h.pipeline.submit(_window(0), "m")
    h.pipeline.submit(_window(1), "m")
    await _settle()
    lost = await h.pipeline.abort()
    assert [p.window.seq for p in lost] == [0, 1]
    assert h.pending_total == pytest.approx(0)
