"""Retry delays (pure)."""

from __future__ import annotations

import random

BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 60.0


def backoff_delay(
    attempt: int, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    A ``Retry-After`` from the upstream is honoured as given (capped at a
    minute); otherwise exponential backoff with full jitter in its upper half.
    """
    if retry_after is not None:
        return min(max(0.0, retry_after), MAX_RETRY_AFTER_SECONDS)
    ceiling = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    jitter: float = (rng or random).random()
    return float(ceiling * (0.5 + 0.5 * jitter))
