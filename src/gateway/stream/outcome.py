"""What became of one window: transcribed, silence, or dropped for a named reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Status = Literal["ok", "silence", "dropped"]


class DropReason(StrEnum):
    """``Transcript.reason`` of a dropped window (protocol.md), and ``DISCONNECTED``, which
    only counts windows whose client left before they could be sent."""

    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    BUDGET_UNAVAILABLE = "BUDGET_UNAVAILABLE"
    STT_UNAVAILABLE = "STT_UNAVAILABLE"
    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
    UPSTREAM_QUOTA = "UPSTREAM_QUOTA"
    BACKLOG = "BACKLOG"
    SHUTDOWN = "SHUTDOWN"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    model: str
    text: str = ""
    reason: DropReason | None = None
    billed_seconds: float = 0.0
    cost_usd: float = 0.0

    @classmethod
    def dropped(cls, reason: DropReason, model: str) -> Outcome:
        return cls(status="dropped", model=model, reason=reason)

    @classmethod
    def silence(cls, model: str) -> Outcome:
        return cls(status="silence", model=model)
