"""Resuming a session (pure): its token, the ``resume`` query, and what a session keeps
while its client is away.

A resume token is ``<session_id>.<secret>``: the session id finds the session,
the secret (random, compared in constant time) proves the client had its
``Begin``. It is bound to the session (and, through it, to its school and
group) and is useless once the session ended. It never reaches a log.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadConfig

#: Transcripts a session keeps for a replay (the last ones sent: a client that resumes has
#: all but those that were on their way, or settled while it was away).
KEPT_TRANSCRIPTS = 256
RESUME_FAILED = "the session to resume has ended or is unknown: this is a new session"
#: The longest token ``?resume=`` accepts (a session id, a dot and the secret).
MAX_TOKEN_CHARS = 128


def new_token(session_id: str, secret: str) -> str:
    return f"{session_id}.{secret}"


def token_session(token: str) -> str | None:
    """The session a resume token names, if it is shaped like one."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or not secret or len(token) > MAX_TOKEN_CHARS:
        return None
    return session_id


def token_matches(offered: str, token: str) -> bool:
    return hmac.compare_digest(offered.encode(), token.encode())


@dataclass(frozen=True, slots=True)
class ResumeAsk:
    """``?resume=<token>&last_seq=<n>``: which session, and the last Transcript it has."""

    token: str
    last_seq: int


def parse_resume(query: Mapping[str, str]) -> ResumeAsk | None:
    """The resume asked for in the connect query (None: a new session); BadConfig if
    ``last_seq`` is not an integer ≥ -1."""
    token = query.get("resume") or None
    raw = query.get("last_seq")
    if token is None:
        if raw not in (None, ""):
            raise BadConfig("last_seq: only with resume")
        return None
    try:
        last_seq = -1 if raw in (None, "") else int(raw)
    except ValueError:
        raise BadConfig("last_seq: must be an integer") from None
    if last_seq < -1:
        raise BadConfig("last_seq: must be -1 or more")
    return ResumeAsk(token, last_seq)


@dataclass(frozen=True, slots=True)
class Settled:
    """Where a session stood when its last window settled: what another replica needs to
    take it over (the gateway keeps it in Redis while the session lives)."""

    next_seq: int
    #: Stream samples up to the end of that window: the client sends audio from there.
    samples: int
    #: ``windows``, ``ok``, ``silence``, ``dropped`` and ``cost_usd`` so far.
    counts: dict[str, float]
    #: The last Transcripts, for the replay.
    kept: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class Resumable:
    """A session's side of resuming: how long it waits for its client, until when it is
    waiting now, and the last Transcripts it sent."""

    token: str
    seconds: float
    detached_until: float | None = None
    kept: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT_TRANSCRIPTS))

    @property
    def detached(self) -> bool:
        return self.detached_until is not None

    def keep(self, transcript: dict[str, Any]) -> None:
        if self.seconds:
            self.kept.append(transcript)

    def after(self, last_seq: int) -> list[dict[str, Any]]:
        """The kept Transcripts a client that has ``last_seq`` lacks, in order."""
        return [t for t in self.kept if t["seq"] > last_seq]
