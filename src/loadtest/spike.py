"""A classroom while the simulated upstream fails for a while (5xx or 429).

Drives the breaker open (5xx) or the rate-limit ratio up (429) so that
``SttUpstreamCircuitOpen`` / ``SttUpstreamRateLimited`` fire on a monitoring
stack, then restores the upstream and checks that the classroom recovered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from loadtest.classroom import ClassroomConfig, run_classroom


async def _set_mode(fake_url: str, mode: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake_url.rstrip('/').removesuffix('/v1')}/_control", json={"mode": mode}
        ) as r,
    ):
        r.raise_for_status()


async def run_spike(
    config: ClassroomConfig, fake_url: str, fault: str, fault_after: float, fault_seconds: float
) -> dict[str, Any]:
    async def inject() -> None:
        await asyncio.sleep(fault_after)
        await _set_mode(fake_url, fault)
        try:
            await asyncio.sleep(fault_seconds)
        finally:
            await _set_mode(fake_url, "normal")

    injector = asyncio.create_task(inject())
    try:
        report = await run_classroom(config)
    finally:
        if not injector.done():
            injector.cancel()
            await _set_mode(fake_url, "normal")
    report["spike"] = {"fault": fault, "after_seconds": fault_after, "fault_seconds": fault_seconds}
    return report
