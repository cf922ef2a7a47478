"""Prompt continuity: which transcript tails may be passed to the next window (pure).

Whisper continues better when it gets the end of the previous text as its
``prompt``, but a hallucinated text fed back in makes the next one worse.
A text is *suspect* when it is empty, when one word or a short phrase repeats
over and over, or when it is one of Whisper's well-known silence
hallucinations; suspect texts are never used as a prompt.
"""

from __future__ import annotations

import re
from collections import Counter

MAX_PROMPT_CHARS = 200
_HALLUCINATIONS = (
    "thank you for watching",
    "thanks for watching",
    "subtitles by",
    "please subscribe",
    "like and subscribe",
    "amara.org",
    "transcribed by",
)
_WORD = re.compile(r"\w+", re.UNICODE)


def is_suspect(text: str) -> bool:
    lowered = text.strip().lower()
    if not lowered:
        return True
    if any(phrase in lowered for phrase in _HALLUCINATIONS):
        return True
    words = _WORD.findall(lowered)
    if len(words) >= 6:
        _, top = Counter(words).most_common(1)[0]
        if top / len(words) > 0.5:
            return True
        for size in (2, 3, 4):
            grams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
            if grams and Counter(grams).most_common(1)[0][1] >= 4:
                return True
    return False


def prompt_tail(text: str) -> str:
    """The last ≤ 200 characters of ``text``, starting at a word boundary."""
    text = text.strip()
    if len(text) <= MAX_PROMPT_CHARS:
        return text
    tail = text[-MAX_PROMPT_CHARS:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < 40 else tail


class PreviousText:
    """The latest trustworthy text of a session, for the prompt of the windows after it.

    Answers can come out of order: only a later window's text replaces an earlier one's,
    and a window never gets the text of itself or of a window after it."""

    def __init__(self) -> None:
        self._text = ""
        self._seq = -1

    def heard(self, seq: int, text: str) -> None:
        if seq > self._seq and not is_suspect(text):
            self._text, self._seq = prompt_tail(text), seq

    def for_window(self, seq: int) -> str:
        return self._text if self._seq < seq else ""
