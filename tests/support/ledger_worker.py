"""Run as a separate process: many concurrent reserve/commit cycles against one Redis.

Prints the micro-dollars it committed. Used by the concurrency proof.
"""

from __future__ import annotations

import asyncio
import random
import sys

from gateway.budget.ledger import Ledger, ScopeDay
from gateway.redis.connection import connect


async def main(url: str, cycles: int, limit: int) -> None:
    client = connect(url)
    ledger = Ledger(client)
    scopes = [
        ScopeDay("global", "2026-11-22", None),
        ScopeDay("district:d", "2026-11-22", None),
        ScopeDay("school:proof", "2026-11-21", limit),
    ]
    committed = 0
    refused = 0

    async def one(i: int) -> None:
        nonlocal committed, refused
        amount = random.randint(1, 50)
        result = await ledger.reserve(
            scopes=scopes,
            amount_micro=amount,
            school_id="proof",
            model="whisper-1",
            now_ms=0,
            lease_ms=10**12,
        )
        if not result.ok:
            refused += 1
            return
        await asyncio.sleep(random.random() / 100)
        assert result.reservation_id is not None
        if i % 7 == 0:
            await ledger.release(result.reservation_id)
            return
        actual = random.randint(0, amount)
        status = await ledger.commit(
            result.reservation_id, actual_micro=actual, audio_ms=100, model="whisper-1"
        )
        again = await ledger.commit(
            result.reservation_id, actual_micro=actual, audio_ms=100, model="whisper-1"
        )
        assert status.status == 1 and again.status == 0
        committed += actual

    await asyncio.gather(*(one(i) for i in range(cycles)))
    await client.aclose()
    print(committed, refused)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
