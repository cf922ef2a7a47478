"""Never invent words: drop segments Whisper itself marks as non-speech or looping (pure).

Whisper reports, per segment, the probability that it heard no speech, the
average log-probability of its tokens, and the compression ratio of its text.
The thresholds are Whisper's own decoding defaults: a segment is *non-speech*
when ``no_speech_prob > 0.6`` and ``avg_logprob < -1.0``, and *looping* when
``compression_ratio > 2.4`` (the same words over and over). A window whose
segments are all dropped is still ``ok`` with empty text (it was billed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.stt.transcriber import Segment

NO_SPEECH_PROB = 0.6
LOW_AVG_LOGPROB = -1.0
HIGH_COMPRESSION_RATIO = 2.4


def suppression_reason(segment: Segment) -> str | None:
    """Why ``segment`` must not be shown (``no_speech`` or ``looping``), or None."""
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOW_AVG_LOGPROB:
        return "no_speech"
    if segment.compression_ratio > HIGH_COMPRESSION_RATIO:
        return "looping"
    return None


@dataclass(frozen=True, slots=True)
class Filtered:
    text: str
    #: The reason of each dropped segment.
    suppressed: tuple[str, ...]


def filter_segments(segments: Sequence[Segment]) -> Filtered:
    kept: list[str] = []
    suppressed: list[str] = []
    for segment in segments:
        reason = suppression_reason(segment)
        if reason is None:
            if segment.text.strip():
                kept.append(segment.text.strip())
        else:
            suppressed.append(reason)
    return Filtered(" ".join(kept), tuple(suppressed))
