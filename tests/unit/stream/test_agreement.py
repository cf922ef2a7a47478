"""LocalAgreement-2: the words two consecutive hypotheses agree on settle, and stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.stream.agreement import Agreement, common_prefix


def test_the_first_hypothesis_settles_nothing() -> None:
    assert Agreement().update("Maya has twelve") == ("Maya has twelve", "")


def test_what_two_hypotheses_agree_on_settles() -> None:
    a = Agreement()
    a.update("Maya has twelve")
    assert a.update("Maya has twelve apples") == ("Maya has twelve apples", "Maya has twelve")
    assert a.update("Maya has twelve apples and") == (
        "Maya has twelve apples and",
        "Maya has twelve apples",
    )


def test_agreement_ignores_case_and_punctuation() -> None:
    a = Agreement()
    a.update("maya has")
    assert a.update("Maya, has twelve")[1] == "Maya, has"


def test_settled_words_are_never_taken_back() -> None:
    a = Agreement()
    a.update("Maya has twelve")
    a.update("Maya has twelve apples")
    text, stable = a.update("My ass twelve apples and she")  # a worse guess of the start
    assert stable.startswith("Maya has twelve")
    assert text == "Maya has twelve apples and she"


def test_a_disagreeing_tail_is_tentative() -> None:
    a = Agreement()
    a.update("she gives three")
    assert a.update("she gave three of them") == ("she gave three of them", "she")


def test_common_prefix_counts_words() -> None:
    assert common_prefix(["a", "b", "c"], ["a", "b", "d"]) == 2
    assert common_prefix([], ["a"]) == 0


words = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=8)


@given(st.lists(words, min_size=1, max_size=6))
def test_stable_text_only_grows_and_starts_the_text(hypotheses: list[list[str]]) -> None:
    a = Agreement()
    before = ""
    for h in hypotheses:
        text, stable = a.update(" ".join(h))
        assert stable.startswith(before)
        assert text.startswith(stable)
        before = stable
