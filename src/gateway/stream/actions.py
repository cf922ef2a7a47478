"""What the session core hands the driver: windows to transcribe and everything else to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.stream.audio_window import Window
from gateway.stream.ending import Ending
from gateway.stream.interims import InterimRequest


@dataclass(frozen=True, slots=True)
class Submission:
    """A window to transcribe, with the model and prompt the session chose for it."""

    seq: int
    window: Window
    model: str
    prompt: str


@dataclass(frozen=True, slots=True)
class Actions:
    """Handed out once by :meth:`SessionCore.take_actions`, in this order: send the messages
    (each with its coalescing key), start the submissions, cancel the work on the windows
    in ``cancellations``, decode the interims (best effort); ``ending`` is set once the
    session is over (close with it)."""

    messages: list[tuple[dict[str, Any], str | None]]
    submissions: list[Submission]
    cancellations: list[int]
    ending: Ending | None
    interims: list[InterimRequest] = field(default_factory=list)
