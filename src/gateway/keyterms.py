"""Class vocabulary and the prompt Whisper gets for each window (pure).

A class tells the gateway which names and subject words it will say: the
``keyterms`` claim of its token and the repeatable ``keyterm`` query
parameter. They are passed to Whisper as the prompt's vocabulary, ahead of the
previous window's text when prompt continuity is on. Whisper reads only the
last ~224 tokens of a prompt, so the vocabulary part is capped at
:data:`MAX_VOCABULARY_PROMPT_CHARS`: the first terms win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.errors import BadConfig, BadKeyterms

MAX_TERMS = 50
MAX_TERM_CHARS = 50
#: About 150 tokens: room is left for the previous text's tail.
MAX_VOCABULARY_PROMPT_CHARS = 600


#: What a term may be, as JSON Schema says it (the OpenAPI document): not blank, and no
#: control characters other than whitespace (which is folded into single spaces).
KEYTERM_PATTERN = "^(?=.*\\S)[^\\u0000-\\u0008\\u000e-\\u001f\\u007f]+$"


def check_terms(terms: Sequence[object], what: str) -> tuple[str, ...]:
    """``terms`` stripped and checked: at most 50, each text of 1–50 characters."""
    if len(terms) > MAX_TERMS:
        raise BadKeyterms(f"{what}: at most {MAX_TERMS} terms")
    out: list[str] = []
    for term in terms:
        if not isinstance(term, str):
            raise BadKeyterms(f"{what}: every term must be text")
        cleaned = " ".join(term.split())
        if not cleaned or len(cleaned) > MAX_TERM_CHARS:
            raise BadKeyterms(f"{what}: each term must have 1 to {MAX_TERM_CHARS} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
            raise BadKeyterms(f"{what}: terms must not hold control characters")
        out.append(cleaned)
    return tuple(out)


def query_terms(values: Sequence[str]) -> tuple[str, ...]:
    """The ``keyterm`` query parameters, or :class:`BadConfig` naming the parameter."""
    try:
        return check_terms(values, "keyterm")
    except BadKeyterms as exc:
        raise BadConfig(str(exc)) from None


def merge(*sources: Iterable[str]) -> tuple[str, ...]:
    """Terms of every source in order, each once (case-insensitively), at most 50."""
    seen: set[str] = set()
    out: list[str] = []
    for source in sources:
        for term in source:
            key = term.casefold()
            if key not in seen and len(out) < MAX_TERMS:
                seen.add(key)
                out.append(term)
    return tuple(out)


def vocabulary_prompt(terms: Sequence[str]) -> str:
    """``"Omar, Priya, photosynthesis."``: as many terms as fit the cap, first ones first."""
    kept: list[str] = []
    size = 0
    for term in terms:
        size += len(term) + 2
        if size > MAX_VOCABULARY_PROMPT_CHARS:
            break
        kept.append(term)
    return ", ".join(kept) + "." if kept else ""


def window_prompt(vocabulary: str, previous: str) -> str | None:
    """The prompt for one window: the vocabulary, then the previous text's tail."""
    prompt = " ".join(part for part in (vocabulary, previous) if part)
    return prompt or None
