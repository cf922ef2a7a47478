"""The event loop's lag, measured by the process itself: a timer every
:data:`INTERVAL_SECONDS`, and how late the loop ran it. Each measurement goes to
``stt_event_loop_lag_seconds`` and to the process's :class:`Saturation` (which decides
admission); a change of state is logged. ``stt_saturated`` shows whether admission is
closed for the load (saturated, or new streams refused by the pace a moment ago)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from gateway.observability.logging import get_logger
from gateway.observability.metrics import Metrics
from gateway.stream.saturation import Saturation

log = get_logger("gateway.admission")

#: How often the loop's lag is measured (20 wake-ups a second: nothing, next to the streams).
INTERVAL_SECONDS = 0.05


async def measure(
    saturation: Saturation,
    metrics: Metrics,
    streams: Callable[[], int],
    closed: Callable[[], bool],
    interval: float = INTERVAL_SECONDS,
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(0.0, now - due)
        metrics.event_loop_lag.observe(lag)
        open_streams = streams()
        changed = saturation.observe(lag, now, open_streams)
        metrics.saturated.set(1 if closed() else 0)
        if changed:
            if saturation.saturated:
                lag_ms = round(saturation.lag * 1000, 1)
                log.warning("admission.saturated", lag_ms=lag_ms, streams=open_streams)
            else:
                log.info("admission.reopened", streams=open_streams)


@contextlib.asynccontextmanager
async def measuring(
    saturation: Saturation,
    metrics: Metrics,
    streams: Callable[[], int],
    closed: Callable[[], bool],
) -> AsyncIterator[None]:
    task = asyncio.create_task(measure(saturation, metrics, streams, closed))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
