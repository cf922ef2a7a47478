"""Prices per minute of audio and window cost in integer micro-dollars (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

MICRO = 1_000_000


class Pricing:
    def __init__(self, usd_per_minute: Mapping[str, float]) -> None:
        self._micro_per_minute = {m: Decimal(str(p)) * MICRO for m, p in usd_per_minute.items()}

    @property
    def models(self) -> frozenset[str]:
        return frozenset(self._micro_per_minute)

    def cost_micro(self, model: str, seconds: float) -> int:
        """Cost of ``seconds`` of audio with ``model``, rounded to the micro-dollar."""
        per_minute = self._micro_per_minute[model]
        exact = per_minute * Decimal(str(seconds)) / 60
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usd(micro: int) -> float:
    return micro / MICRO
