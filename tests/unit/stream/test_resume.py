"""Resuming a session in the core, synchronously: a dropped connection detaches the session,
a resume continues it, and across any drops the client ends with every window once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.errors import BadConfig
from gateway.stream.ending import SHUTDOWN
from gateway.stream.resume import (
    KEPT_TRANSCRIPTS,
    Resumable,
    ResumeAsk,
    Settled,
    parse_resume,
    token_matches,
    token_session,
)
from tests.support.audio import silence, tone
from tests.unit.stream.test_core import CLAIMS, LIMITS, RATE, Harness

RESUME = 30.0


class Client(Harness):
    """A harness whose messages reach the client only while it is connected."""

    def __init__(self, **kwargs: Any) -> None:
        self.connected = True
        self.received: list[dict[str, Any]] = []
        super().__init__(resume_seconds=RESUME, **kwargs)

    def take(self) -> None:
        before = len(self.sent)
        super().take()
        if self.connected:
            self.received += self.sent[before:]

    def drop(self, in_flight: int = 0) -> None:
        """The network goes away; the last ``in_flight`` messages never arrived."""
        if in_flight:
            del self.received[-in_flight:]
        self.connected = False
        self.core.connection_lost(self.now)
        self.take()

    def resume(self) -> dict[str, Any]:
        seqs = [m["seq"] for m in self.received if m["type"] == "Transcript"]
        self.connected = True
        self.core.resumed(CLAIMS, max(seqs, default=-1), self.now, 3600.0)
        before = len(self.received)
        self.take()
        begin = self.received[before]
        assert begin["type"] == "Begin"
        return begin

    def transcripts(self) -> list[dict[str, Any]]:
        """What the client has, deduplicated by seq."""
        by_seq = {m["seq"]: m for m in self.received if m["type"] == "Transcript"}
        return [by_seq[s] for s in sorted(by_seq)]


def test_begin_offers_a_token_and_how_long_a_drop_is_waited_for() -> None:
    [begin] = Client().received
    assert begin["resume_token"] == "sess.secret" and begin["resume_seconds"] == 30
    assert begin["resumed"] is False and begin["audio_seconds"] == 0.0
    off = Harness().sent[0]
    assert off["resume_seconds"] == 0 and off["resumed"] is False


def test_a_drop_detaches_closes_the_open_window_and_keeps_its_transcript() -> None:
    c = Client()
    c.audio(tone(440, 0.5))
    c.drop()
    assert c.core.detached and not c.core.done
    assert list(c.jobs) == [0]  # the open window closed at the audio received
    c.answer(0)
    assert c.transcripts() == []  # nobody to send it to
    c.at(c.now + RESUME - 1)  # no idle timeout while detached
    assert not c.core.done
    begin = c.resume()
    assert begin["resumed"] is True and begin["audio_seconds"] == pytest.approx(0.5)
    assert begin["session_id"] == "sess"
    [kept] = c.transcripts()
    assert (kept["seq"], kept["start"], kept["end"]) == (0, 0.0, pytest.approx(0.5))


def test_the_session_goes_on_after_a_resume_and_ends_once_for_all_of_it() -> None:
    c = Client()
    c.windows(1)
    c.answer(0)
    c.drop(in_flight=1)  # Transcript 0 was on its way
    c.resume()
    c.windows(1)
    c.answer(1)
    c.text('{"type":"CloseStream"}')
    assert [t["seq"] for t in c.transcripts()] == [0, 1]
    assert [m["seq"] for m in c.received if m["type"] == "Transcript"] == [0, 1]
    termination = c.received[-1]
    assert termination["type"] == "Termination" and termination["windows"] == 2
    assert termination["audio_seconds"] == pytest.approx(2.0)


def test_no_resume_within_resume_seconds_ends_the_session_as_disconnected() -> None:
    c = Client()
    c.audio(tone(440, 0.5))
    c.drop()
    c.answer(0)
    c.at(c.now + RESUME)
    assert c.core.done and c.core.ending is not None
    assert c.core.ending.metric_reason == "disconnected" and c.core.ending.gone


def test_an_ending_while_detached_finishes_its_windows_and_tells_nobody() -> None:
    """A shutdown (or a hand-over) while the client is away: the windows in flight finish
    (their charges settle, their Transcripts are kept), nothing reaches the client."""
    c = Client()
    c.audio(tone(440, 0.5))
    c.drop()
    received = len(c.received)
    c.core.request_end(SHUTDOWN, c.now)
    c.take()
    assert not c.core.done and list(c.jobs) == [0]  # window 0 still finishes
    c.answer(0)
    assert c.core.done and c.core.ending is SHUTDOWN
    assert len(c.received) == received
    assert [t["seq"] for t in c.core._resume.kept] == [0]


def test_without_resume_seconds_a_drop_ends_the_session() -> None:
    h = Harness()
    h.audio(tone(440, 0.5))
    h.core.connection_lost(h.now)
    h.take()
    assert h.core.done and not h.core.detached


def test_a_resume_failed_session_says_so_after_begin() -> None:
    start = replace(Client().core.start, resume_failed=True)
    from gateway.stream.core import SessionCore

    sent = [m for m, _ in SessionCore(start, 0.0).take_actions().messages]
    assert [m["type"] for m in sent] == ["Begin", "Warning"]
    assert sent[1]["code"] == "RESUME_FAILED" and sent[0]["resumed"] is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, None),
        ({"resume": "a.b"}, ResumeAsk("a.b", -1)),
        ({"resume": "a.b", "last_seq": "7"}, ResumeAsk("a.b", 7)),
    ],
)
def test_the_resume_query(query: dict[str, str], expected: ResumeAsk | None) -> None:
    assert parse_resume(query) == expected


@pytest.mark.parametrize(
    "query",
    [{"last_seq": "3"}, {"resume": "a.b", "last_seq": "x"}, {"resume": "a.b", "last_seq": "-2"}],
)
def test_a_bad_resume_query_names_its_parameter(query: dict[str, str]) -> None:
    with pytest.raises(BadConfig, match="last_seq"):
        parse_resume(query)


def test_tokens() -> None:
    assert token_session("abc.secret") == "abc"
    for bad in ("abc", ".secret", "abc.", "a." + "x" * 200):
        assert token_session(bad) is None
    assert token_matches("abc.secret", "abc.secret")
    assert not token_matches("abc.secreT", "abc.secret")


def test_kept_transcripts_are_bounded() -> None:
    kept = Resumable("t", 30.0)
    for seq in range(KEPT_TRANSCRIPTS + 10):
        kept.keep({"seq": seq})
    assert len(kept.kept) == KEPT_TRANSCRIPTS
    assert [t["seq"] for t in kept.after(KEPT_TRANSCRIPTS + 7)] == [
        KEPT_TRANSCRIPTS + 8,
        KEPT_TRANSCRIPTS + 9,
    ]


FRAMES = {"speech": tone(440, 0.3), "quiet": silence(0.3)}


class ResumeMachine(RuleBasedStateMachine):
    """Any interleaving of audio, window outcomes, drops (with messages lost on the way),
    resumes and time: the client ends with every window exactly once, in order, tiling the
    audio it sent, and one Termination that counts all of it."""

    def __init__(self) -> None:
        super().__init__()
        self.c = Client(limits=replace(LIMITS, max_pending_seconds=30.0))
        self.sent_seconds = 0.0

    @precondition(lambda self: self.c.connected and not self.c.core.done)
    @rule(kind=st.sampled_from(sorted(FRAMES)))
    def audio(self, kind: str) -> None:
        self.c.audio(FRAMES[kind])
        self.sent_seconds += len(FRAMES[kind]) / 2 / RATE

    @precondition(lambda self: self.c.jobs)
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        self.c.answer(data.draw(st.sampled_from(sorted(self.c.jobs))))

    @precondition(lambda self: self.c.connected and not self.c.core.done)
    @rule(in_flight=st.integers(0, 2))
    def drop(self, in_flight: int) -> None:
        in_flight = min(in_flight, len(self.c.received) - 1)
        self.c.drop(in_flight)

    @precondition(lambda self: not self.c.connected and not self.c.core.done)
    @rule(dt=st.floats(0.0, RESUME - 1))
    def resume(self, dt: float) -> None:
        self.c.at(self.c.now + dt)
        begin = self.c.resume()
        assert begin["audio_seconds"] == pytest.approx(self.sent_seconds, abs=1e-6)

    @invariant()
    def what_the_client_has_is_contiguous(self) -> None:
        transcripts = self.c.transcripts()
        assert [t["seq"] for t in transcripts] == list(range(len(transcripts)))

    def teardown(self) -> None:
        c = self.c
        if not c.connected:
            c.resume()
        c.text('{"type":"CloseStream"}')
        while c.jobs:
            c.answer(min(c.jobs))
        transcripts = c.transcripts()
        position = 0.0
        for t in transcripts:
            assert t["start"] == pytest.approx(position, abs=1e-3)
            position = t["end"]
        assert position == pytest.approx(self.sent_seconds, abs=1e-3)
        termination = c.received[-1]
        assert termination["type"] == "Termination"
        assert termination["windows"] == len(transcripts)
        assert termination["audio_seconds"] == pytest.approx(self.sent_seconds, abs=1e-6)


TestResumeMachine = ResumeMachine.TestCase
TestResumeMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_a_session_taken_over_goes_on_where_its_last_window_settled() -> None:
    """Replica A had windows 0 and 1 settled (the client got only 0); replica B takes the
    session from what A kept: Begin at the end of window 1, window 1 replayed, then seq 2
    from there, and one Termination for all of it."""
    a = Client()
    a.windows(2)
    a.answer(0)
    a.answer(1)
    kept = tuple(m for m in a.sent if m["type"] == "Transcript")
    end = kept[-1]["end"]
    settled = Settled(
        next_seq=2,
        samples=round(end * RATE),
        counts={"windows": 2, "ok": 2, "silence": 0, "dropped": 0, "cost_usd": 0.02},
        kept=kept,
    )
    start = replace(a.core.start, settled=settled, last_seq=0)
    from gateway.stream.core import SessionCore

    b = SessionCore(start, 100.0)
    sent = [m for m, _ in b.take_actions().messages]
    assert [m["type"] for m in sent] == ["Begin", "Transcript"]
    assert sent[0]["resumed"] is True and sent[0]["audio_seconds"] == pytest.approx(end)
    assert sent[1]["seq"] == 1
    b.receive_audio(tone(440, 1.0), 100.5)  # the client goes on from `end`
    b.receive_text('{"type":"Finalize"}', 101.0)
    [job] = b.take_actions().submissions
    assert job.seq == 2 and job.window.start == pytest.approx(end)
    from gateway.stream.outcome import Outcome

    done = Outcome("ok", "whisper-1", text="w2", billed_seconds=1.0, cost_usd=0.01)
    b.window_resolved(2, done, 101.5)
    b.receive_text('{"type":"CloseStream"}', 102.0)
    messages = [m for m, _ in b.take_actions().messages]
    assert [m["type"] for m in messages] == ["Transcript", "Termination"]
    termination = messages[-1]
    assert termination["windows"] == 3 and termination["transcribed"] == 3
    assert termination["audio_seconds"] == pytest.approx(end + 1.0)
    assert termination["cost_usd"] == pytest.approx(0.03)
