"""What a classroom cares about, checked per group (pure).

Every group got only its own transcripts, windows tile its stream, nothing
is missing, and ``Termination`` agrees with what was delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 1e-6


@dataclass
class GroupResult:
    group_id: str
    index: int
    frequency: int | None
    audio_seconds: float
    connected: bool = False
    connect_ms: float | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    error: str | None = None
    reconnects: int = 0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


def sessions_of(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A group's messages cut into its sessions, each from its ``Begin`` (a resumed
    session's ``Begin`` continues it; refused attempts before one, with no ``Begin``,
    belong to none)."""
    sessions: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("type") == "Begin" and not (message.get("resumed") and sessions):
            sessions.append([message])
        elif sessions:
            sessions[-1].append(message)
    return sessions


def problems(result: GroupResult, *, check_text: bool) -> list[str]:
    """Everything wrong with one group's sessions; empty when all is well. A group that
    reconnected (after 1001 or 1013) is checked session by session, and the seconds its
    sessions accounted for must add up to the audio it sent."""
    name = result.group_id
    if not result.connected:
        return [f"{name}: did not connect ({result.error or 'no Begin'})"]
    sessions = sessions_of(result.messages)
    found: list[str] = []
    accounted = 0.0
    for number, messages in enumerate(sessions):
        label = name if len(sessions) == 1 else f"{name} session {number + 1}"
        found += _session_problems(label, name, messages, result, check_text=check_text)
        ended = [m for m in messages if m.get("type") == "Termination"]
        accounted += float(ended[0].get("audio_seconds", 0)) if ended else 0.0
    if not found and abs(accounted - result.audio_seconds) > 1e-3:
        found.append(
            f"{name}: Termination.audio_seconds={accounted:g} over {len(sessions)} session(s), "
            f"sent {result.audio_seconds}"
        )
    if result.close_code not in (1000, None) and not found:
        found.append(f"{name}: closed with {result.close_code}")
    return found


def _session_problems(
    label: str,
    group_id: str,
    messages: list[dict[str, Any]],
    result: GroupResult,
    *,
    check_text: bool,
) -> list[str]:
    found: list[str] = []
    if messages[0].get("group_id") != group_id:
        found.append(f"{label}: Begin missing or for another group")
    transcripts = [m for m in messages if m.get("type") == "Transcript"]
    seqs = [m.get("seq") for m in transcripts]
    if seqs != list(range(len(transcripts))):
        found.append(f"{label}: seq not contiguous from 0: {seqs[:10]}…")
    position = 0.0
    for m in transcripts:
        if abs(float(m.get("start", -1)) - position) > TOLERANCE:
            found.append(
                f"{label}: window {m.get('seq')} starts at {m.get('start')}, expected {position}"
            )
            break
        position = float(m.get("end", 0))
    if check_text and result.frequency is not None:
        marker = f"tone {result.frequency} Hz"
        foreign = [
            m["text"]
            for m in transcripts
            if m.get("status") == "ok" and m.get("text") and marker not in m["text"]
        ]
        if foreign:
            found.append(f"{label}: transcripts of other audio: {foreign[:2]}")
    terminations = [m for m in messages if m.get("type") == "Termination"]
    if not terminations:
        errors = [m for m in messages if m.get("type") == "Error"]
        code = errors[-1].get("code") if errors else None
        found.append(f"{label}: no Termination (close {result.close_code}, error {code})")
        return found
    term = terminations[0]
    statuses = [m.get("status") for m in transcripts]
    expected = {
        "windows": len(transcripts),
        "transcribed": statuses.count("ok"),
        "silence": statuses.count("silence"),
        "dropped": statuses.count("dropped"),
    }
    for key, value in expected.items():
        if term.get(key) != value:
            found.append(f"{label}: Termination.{key}={term.get(key)}, delivered {value}")
    if abs(position - float(term.get("audio_seconds", -1))) > 1e-3:
        found.append(
            f"{label}: windows cover {position:.3f} s of {term.get('audio_seconds')} s accounted"
        )
    return found
