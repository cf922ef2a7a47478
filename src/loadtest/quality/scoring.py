"""How good a transcript is and what it cost, from the messages a gateway sent (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jiwer

from loadtest.quality.recording import Spoken
from loadtest.report import percentile

#: A window counts as inside a long pause when it lies within it, give or take this much.
PAUSE_TOLERANCE = 0.5


@cache
def _normalizer() -> Any:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normaliser: case, punctuation, spelling, numbers as digits."""
    return str(_normalizer()(text))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``, both normalised."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref.split():
        return 0.0 if not hyp.split() else 1.0
    if not hyp.split():
        return 1.0
    return float(jiwer.wer(ref, hyp))


@dataclass(frozen=True, slots=True)
class Received:
    """A ``Transcript`` and when it arrived (seconds since the stream started)."""

    message: dict[str, Any]
    arrived: float

    @property
    def start(self) -> float:
        return float(self.message["start"])

    @property
    def end(self) -> float:
        return float(self.message["end"])

    @property
    def text(self) -> str:
        return str(self.message.get("text") or "")


def joined_text(received: Sequence[Received]) -> str:
    return " ".join(r.text.strip() for r in received if r.text.strip())


def billed_seconds(received: Sequence[Received]) -> float:
    """What the gateway charged: ``billed_seconds`` when sent, else the window of an ``ok``."""
    total = 0.0
    for r in received:
        if "billed_seconds" in r.message:
            total += float(r.message["billed_seconds"])
        elif r.message.get("status") == "ok":
            total += r.end - r.start
    return total


def pause_texts(received: Sequence[Received], pauses: Sequence[tuple[float, float]]) -> list[str]:
    """Text of windows that lie inside a long pause (words no one said)."""
    found = []
    for start, end in pauses:
        for r in received:
            inside = r.start >= start - PAUSE_TOLERANCE and r.end <= end + PAUSE_TOLERANCE
            if inside and r.text.strip():
                found.append(r.text.strip())
    return found


def sentence_delays(
    received: Sequence[Received], sentences: Sequence[Spoken], speed: float
) -> list[float]:
    """For each sentence: seconds from when its last word was sent to the arrival of the
    transcript covering it."""
    delays = []
    for sentence in sentences:
        sent_at = sentence.end / speed
        covering = [r for r in received if r.end >= sentence.end - 1e-6]
        if covering:
            delays.append(max(0.0, covering[0].arrived - sent_at))
    return delays


#: Words "show" for a sentence once a message with text covers this much of it.
FIRST_WORDS_COVER_SECONDS = 0.5
#: First-words latency counts from this far into the sentence (its first words said).
FIRST_WORDS_AFTER_SECONDS = 1.0


def first_words_delays(
    received: Sequence[Received], sentences: Sequence[Spoken], speed: float
) -> list[float]:
    """For each sentence: seconds from when its first second was said to the arrival of the
    first message (``Interim`` or ``Transcript``) with text covering at least 0.5 s of it."""
    delays = []
    for sentence in sentences:
        said_at = (sentence.start + FIRST_WORDS_AFTER_SECONDS) / speed
        for r in sorted(received, key=lambda r: r.arrived):
            overlap = min(r.end, sentence.end) - max(r.start, sentence.start)
            if r.text.strip() and overlap >= FIRST_WORDS_COVER_SECONDS - 1e-6:
                delays.append(max(0.0, r.arrived - said_at))
                break
    return delays


#: A window end this close to a sentence's first or last sample is not inside it.
CUT_TOLERANCE = 0.05


def cuts_inside_sentences(received: Sequence[Received], sentences: Sequence[Spoken]) -> list[float]:
    """Window ends (all but the last) that fall inside a sentence: where words were cut."""
    cuts = []
    for r in received[:-1]:
        if any(s.start + CUT_TOLERANCE < r.end < s.end - CUT_TOLERANCE for s in sentences):
            cuts.append(r.end)
    return cuts


#: The latency target: a sentence's words arrive within the window target, the upstream's
#: time for the window holding it, and this much.
LATENCY_SLACK_SECONDS = 0.5


def late_sentences(
    received: Sequence[Received],
    sentences: Sequence[Spoken],
    speed: float,
    window_seconds: float,
) -> list[str]:
    """Sentences whose words came later than ``window_seconds`` + the covering window's
    upstream time (its ``latency_ms``) + 0.5 s after they were said (times scaled by
    ``speed``)."""
    late = []
    for sentence in sentences:
        covering = [r for r in received if r.end >= sentence.end - 1e-6]
        if not covering:
            late.append(sentence.text)
            continue
        window = covering[0]
        upstream = float(window.message.get("latency_ms", 0)) / 1000
        allowed = window_seconds / speed + upstream + LATENCY_SLACK_SECONDS
        if window.arrived - sentence.end / speed > allowed + 1e-6:
            late.append(sentence.text)
    return late


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        value = percentile(list(values), q)
        result[name] = None if value is None else round(value, 3)
    return result
