"""A replica's copy of the schools' stored settings (those changed through the API), read
from the ledger at most every :data:`OVERRIDE_CACHE_SECONDS` and refreshed by every
reservation, which returns them."""

from __future__ import annotations

import time
from typing import Any

from gateway.budget.ledger import Ledger, read_overrides
from gateway.errors import LedgerUnavailable

OVERRIDE_CACHE_SECONDS = 2.0


class StoredSettings:
    def __init__(self) -> None:
        #: school → (read at, stored settings as stored, as values)
        self._cache: dict[str, tuple[float, str | None, dict[str, Any]]] = {}

    async def values(self, ledger: Ledger, school_id: str, any_age: bool = False) -> dict[str, Any]:
        """The school's stored settings; ``any_age``: any cached copy will do."""
        cached = self._cache.get(school_id)
        if cached and (any_age or time.monotonic() - cached[0] < OVERRIDE_CACHE_SECONDS):
            return cached[2]
        try:
            raw = await ledger.stored_settings(school_id)
        except LedgerUnavailable:
            return cached[2] if cached else {}
        return self.remember(school_id, raw)

    def remember(self, school_id: str, raw: str | None) -> dict[str, Any]:
        """Cache a school's stored settings as read now; their values."""
        values = read_overrides(school_id, raw)
        self._cache[school_id] = (time.monotonic(), raw, values)
        return values

    def same(self, school_id: str, raw: str | None) -> bool:
        """Whether ``raw`` is what this replica has."""
        cached = self._cache.get(school_id)
        return cached is not None and cached[1] == raw

    def forget(self, school_id: str) -> None:
        self._cache.pop(school_id, None)
