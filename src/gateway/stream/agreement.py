"""Live hypotheses that settle (pure): LocalAgreement-2, as in whisper_streaming.

Each interim decodes the open window from its start, so each hypothesis is a
whole new guess at the same words. The words two consecutive hypotheses
agree on, from the start, are *settled* (``stable_text``) and stay settled:
a later hypothesis that disagrees changes only the tentative tail, which
follows the settled words. (Macháček, Dabre and Bojar, "Turning Whisper into
Real-Time Transcription System", 2023: LocalAgreement-n with n = 2.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PUNCTUATION = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    """A word as compared: case and punctuation aside ("Maya," agrees with "maya")."""
    return _PUNCTUATION.sub("", word.lower())


def common_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words ``a`` and ``b`` share (compared by :func:`_key`)."""
    count = 0
    for left, right in zip(a, b, strict=False):
        if _key(left) != _key(right):
            break
        count += 1
    return count


@dataclass(slots=True)
class Agreement:
    """The hypotheses of one window: what is settled, and the latest guess."""

    settled: list[str] = field(default_factory=list)
    _previous: list[str] | None = None

    def update(self, hypothesis: str) -> tuple[str, str]:
        """Take a new hypothesis; return ``(text, stable_text)``: the settled words followed
        by the new guess's words after them, and the settled words alone."""
        words = hypothesis.split()
        # The guess's words past the settled ones (by position when it disagrees with them:
        # settled words are never taken back).
        tail = words[len(self.settled) :]
        if self._previous is not None:
            agreed = common_prefix(self._previous, tail)
            self.settled += tail[:agreed]
            tail = tail[agreed:]
        self._previous = tail
        return " ".join([*self.settled, *tail]), " ".join(self.settled)
