"""Who may start a stream on this process (pure): the school's cap and a fair share.

A school may hold at most its policy's ``max_concurrent_streams`` here (the
fleet also holds it across replicas). Once the process is busy — at
``FAIR_SHARE_FROM`` of ``MAX_SESSIONS`` or more — a school already holding
its fair share (the slots divided among the schools streaming here, the
newcomer counted) gets no more, so one school's tokens cannot take every
slot while other schools wait.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The share of MAX_SESSIONS from which slots are shared fairly between schools.
FAIR_SHARE_FROM = 0.8


@dataclass(frozen=True, slots=True)
class Occupancy:
    """The process's sessions when a new stream of a school asks to start."""

    total: int
    max_sessions: int
    #: Sessions of the asking school here, and schools with a session here.
    school_sessions: int
    schools: int


def fair_share(occupancy: Occupancy) -> int:
    """The slots each school may hold while the process is busy (at least one)."""
    schools = occupancy.schools + (1 if occupancy.school_sessions == 0 else 0)
    return max(1, occupancy.max_sessions // max(1, schools))


def refusal(occupancy: Occupancy, cap: int | None) -> str | None:
    """Why a new stream of the school may not start here, or None."""
    held = occupancy.school_sessions
    if cap is not None and held >= cap:
        return f"the school already has {held} of its {cap} concurrent streams"
    if occupancy.total >= FAIR_SHARE_FROM * occupancy.max_sessions:
        share = fair_share(occupancy)
        if held >= share:
            return f"the gateway is busy and the school already has its fair share ({share})"
    return None
