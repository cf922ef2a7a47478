"""The limits of one streaming session, from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.stream.vad import VadParams


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_frame_bytes: int
    idle_timeout: float
    max_pending_seconds: float
    max_in_flight: int
    finish_timeout: float
    vad: VadParams
    #: No window is longer (the adaptive window's ceiling, ``STT_WINDOW_MAX_SECONDS``).
    window_max_seconds: float = 15.0
    #: Give each window the previous window's text as its prompt (``STT_PROMPT_CONTINUITY``).
    prompt_continuity: bool = False
    #: Shorten long pauses in the audio sent upstream (``STT_SHORTEN_PAUSES``).
    shorten_pauses: bool = True
