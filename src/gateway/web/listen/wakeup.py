"""One timer per session, for the core's next deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Wakeup:
    """Calls ``fire`` at the earliest deadline it was armed for (never a timer per frame: a
    later deadline waits for the timer to fire and be armed again)."""

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._timer: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, deadline: float | None) -> None:
        if deadline is None or (self._at is not None and self._at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._at = deadline
        delay = max(0.0, deadline - time.monotonic()) + 0.01
        self._timer = asyncio.get_running_loop().call_later(delay, self._fired)

    def _fired(self) -> None:
        self._timer = self._at = None
        self._fire()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
