"""The services' health checks, registered as each service starts, asked by readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Ping = Callable[[], Awaitable[dict[str, Any]]]


class Pings:
    """Named checks in registration order; each answers a dict with at least ``status``."""

    def __init__(self) -> None:
        self._pings: dict[str, Ping] = {}

    def register(self, name: str, ping: Ping) -> None:
        if name in self._pings:
            raise ValueError(f"a ping named {name!r} is registered already")
        self._pings[name] = ping

    async def check(self) -> dict[str, dict[str, Any]]:
        """Every check's answer, by name, in registration order."""
        return {name: await ping() for name, ping in self._pings.items()}
