"""When a client connects again, and after how long (pure), as docs/Protocol.md says: after
1001, 1006, 1011 and 1013 (honouring ``retry_after``), never after a close that says the
stream must not come back as it was (4001, 4003, 4008, 4009, 4402…)."""

from __future__ import annotations

import random
from collections.abc import Callable

#: Close codes after which a client connects again.
RETRY_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
#: Backoff between attempts: doubling from the first, capped, with full jitter.
FIRST_DELAY = 0.5
MAX_DELAY = 10.0


def may_reconnect(close_code: int | None) -> bool:
    """Whether a connection that ended with ``close_code`` (None: no close frame, the
    network went away) is worth another attempt."""
    return close_code is None or close_code in RETRY_CODES


def delay(
    attempt: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry ``attempt`` (0: the first). The gateway's
    ``retry_after`` comes first; jitter keeps a classroom's clients from coming back
    in step."""
    if retry_after is not None:
        return float(retry_after) * (1.0 + rand() / 2)
    return min(MAX_DELAY, FIRST_DELAY * 2.0**attempt) * (0.5 + rand() / 2)
