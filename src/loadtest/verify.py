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


def problems(result: GroupResult, *, check_text: bool) -> list[str]:
    """Everything wrong with one group's session; empty when all is well."""
    found: list[str] = []
    name = result.group_id
    if not result.connected:
        return [f"{name}: did not connect ({result.error or 'no Begin'})"]
    begin = result.of_type("Begin")
    if not begin or begin[0].get("group_id") != name:
        found.append(f"{name}: Begin missing or for another group")
    transcripts = result.of_type("Transcript")
    seqs = [m.get("seq") for m in transcripts]
    if seqs != list(range(len(transcripts))):
        found.append(f"{name}: seq not contiguous from 0: {seqs[:10]}…")
    position = 0.0
    for m in transcripts:
        if abs(float(m.get("start", -1)) - position) > TOLERANCE:
            found.append(
                f"{name}: window {m.get('seq')} starts at {m.get('start')}, expected {position}"
            )
            break
        position = float(m.get("end", 0))
    if abs(position - result.audio_seconds) > 1e-3:
        found.append(f"{name}: windows cover {position:.3f} s of {result.audio_seconds:.3f} s sent")
    if check_text and result.frequency is not None:
        marker = f"tone {result.frequency} Hz"
        foreign = [
            m["text"]
            for m in transcripts
            if m.get("status") == "ok" and m.get("text") and marker not in m["text"]
        ]
        if foreign:
            found.append(f"{name}: transcripts of other audio: {foreign[:2]}")
    terminations = result.of_type("Termination")
    if not terminations:
        errors = result.of_type("Error")
        code = errors[-1].get("code") if errors else None
        found.append(f"{name}: no Termination (close {result.close_code}, error {code})")
    else:
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
                found.append(f"{name}: Termination.{key}={term.get(key)}, delivered {value}")
        if abs(float(term.get("audio_seconds", -1)) - result.audio_seconds) > 1e-3:
            found.append(
                f"{name}: Termination.audio_seconds={term.get('audio_seconds')}, "
                f"sent {result.audio_seconds}"
            )
    if result.close_code not in (1000, None) and not found:
        found.append(f"{name}: closed with {result.close_code}")
    return found
