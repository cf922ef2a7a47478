"""The circuit guard under a non-UTC local clock (see conftest)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.errors import RateLimited, ServerError
from gateway.stt.breaker import CircuitGuard


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _fail() -> None:
    raise ServerError("boom")


async def _ok() -> str:
    return "fine"


async def test_timezone_is_not_utc() -> None:
    assert time.localtime().tm_gmtoff != 0


async def test_opens_after_consecutive_failures_and_recovers_with_one_probe() -> None:
    clock = _Clock()
    transitions: list[str] = []
    guard = CircuitGuard(
        fail_max=3, reset_seconds=30, on_transition=transitions.append, clock=clock
    )
    for _ in range(3):
        with pytest.raises(ServerError):
            await guard.call(_fail)
    assert guard.state == "open"
    assert transitions == ["open"]
    assert guard.seconds_until_probe() == pytest.approx(30)

    held: list[int] = []
    probes = 0

    async def probe() -> str:
        nonlocal probes
        probes += 1
        await asyncio.sleep(0.01)
        return "fine"

    waiters = [
        asyncio.create_task(guard.call(probe, on_hold=lambda i=i: held.append(i))) for i in range(5)
    ]
    await asyncio.sleep(0.05)
    assert probes == 0 and sorted(held) == [0, 1, 2, 3, 4]  # all held, none failed
    clock.now += 31
    guard._wake()
    results = await asyncio.gather(*waiters)
    assert results == ["fine"] * 5
    assert guard.state == "closed"
    assert transitions == ["open", "half_open", "closed"]


async def test_failed_probe_reopens() -> None:
    clock = _Clock()
    guard = CircuitGuard(fail_max=1, reset_seconds=5, clock=clock)
    with pytest.raises(ServerError):
        await guard.call(_fail)
    clock.now += 6
    with pytest.raises(ServerError):
        await guard.call(_fail)
    assert guard.state == "open"
    assert guard.seconds_until_probe() == pytest.approx(5)


async def test_rate_limits_do_not_trip() -> None:
    guard = CircuitGuard(fail_max=2, reset_seconds=5)

    async def limited() -> None:
        raise RateLimited("slow down")

    for _ in range(5):
        with pytest.raises(RateLimited):
            await guard.call(limited)
    assert guard.state == "closed"
    assert await guard.call(_ok) == "fine"
