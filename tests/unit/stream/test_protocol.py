from __future__ import annotations

import pytest

from gateway.errors import BadConfig
from gateway.stream.continuity import is_suspect, prompt_tail
from gateway.stream.protocol import parse_control, parse_query

MODELS = {"whisper-1", "gpt-4o-mini-transcribe"}


def test_query_defaults() -> None:
    config = parse_query({}, default_model="whisper-1", allowed_models=MODELS)
    assert (
        config.encoding,
        config.sample_rate,
        config.channels,
        config.language,
        config.model,
    ) == ("pcm_s16le", 16000, 1, None, "whisper-1")


@pytest.mark.parametrize("rate", ["8000", "48000"])
def test_sample_rate_bounds_are_inclusive(rate: str) -> None:
    config = parse_query({"sample_rate": rate}, default_model="whisper-1", allowed_models=MODELS)
    assert config.sample_rate == int(rate)


@pytest.mark.parametrize(
    "query",
    [
        {"sample_rate": "7999"},
        {"sample_rate": "48001"},
        {"language": "EN"},
        {"channels": "0"},
        {"model": "x"},
    ],
)
def test_bad_queries(query: dict[str, str]) -> None:
    with pytest.raises(BadConfig):
        parse_query(query, default_model="whisper-1", allowed_models=MODELS)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"type":"KeepAlive"}', "KeepAlive"),
        ('{"type":"Finalize","x":1}', "Finalize"),
        ('{"type":"CloseStream"}', "CloseStream"),
        ('{"type":"closestream"}', None),
        ("[]", None),
        ("", None),
        ("{" * 5000, None),
        ('"KeepAlive"', None),
    ],
)
def test_control_messages(text: str, kind: str | None) -> None:
    assert parse_control(text) == kind


@pytest.mark.parametrize(
    ("text", "suspect"),
    [
        ("", True),
        ("   ", True),
        ("Thank you for watching!", True),
        ("the the the the the the the", True),
        ("go on go on go on go on go on", True),
        ("Photosynthesis turns light into chemical energy in plants.", False),
    ],
)
def test_suspect_texts(text: str, suspect: bool) -> None:
    assert is_suspect(text) is suspect


def test_prompt_tail_is_bounded_at_a_word() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    tail = prompt_tail(text)
    assert len(tail) <= 200 and text.endswith(tail) and tail.startswith("word")
    assert prompt_tail("short text") == "short text"
