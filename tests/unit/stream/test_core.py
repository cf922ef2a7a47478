"""The session core, synchronously: no sockets, no event loop, time passed in."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.auth.tokens import Claims
from gateway.errors import Replaced
from gateway.stream.actions import Submission
from gateway.stream.core import SessionCore
from gateway.stream.ending import CLIENT_CLOSE, DISCONNECTED, SHUTDOWN, SLOW_CONSUMER, from_error
from gateway.stream.interims import InterimRequest
from gateway.stream.limits import SessionLimits
from gateway.stream.notices import RATE_LIMIT_WARNING_INTERVAL
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.protocol import StreamConfig
from gateway.stream.start import SessionStart
from gateway.stream.vad import VadParams
from tests.support.audio import silence, tone

RATE = 16000
LIMITS = SessionLimits(
    max_frame_bytes=64_000,
    idle_timeout=10.0,
    max_pending_seconds=30.0,
    max_in_flight=2,
    finish_timeout=5.0,
    vad=VadParams(),
    window_max_seconds=3.0,
)
CONFIG = StreamConfig("pcm_s16le", RATE, 1, None, "whisper-1")
CLAIMS = Claims("t", "student", "s-1", "g-1", None, 2_000_000_000)


class Harness:
    """A core and everything it asked for, taken out as a driver would."""

    def __init__(
        self,
        limits: SessionLimits = LIMITS,
        *,
        expires_in: float = 3600.0,
        interim_interval: float | None = None,
        window_seconds: float = 1.0,
        resume_seconds: float = 0.0,
    ) -> None:
        self.now = 0.0
        self.sent: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.jobs: dict[int, Submission] = {}
        self.handed: dict[int, Submission] = {}
        #: Work the core cancelled that has not yet reported back.
        self.stopping: list[int] = []
        self.cancelled: list[int] = []
        self.model = "whisper-1"
        self.window_seconds = window_seconds
        self.interim_asks: list[InterimRequest] = []
        start = SessionStart(
            session_id="sess",
            claims=CLAIMS,
            config=CONFIG,
            limits=limits,
            provider="simulated",
            vocabulary="Omar, Priya",
            expires_in=expires_in,
            window_seconds=self.window_seconds,
            model=self.model,
            interim_interval=interim_interval,
            resume_token="sess.secret" if resume_seconds else "",
            resume_seconds=resume_seconds,
        )
        self.core = SessionCore(start, self.now)
        self.take()

    def take(self) -> None:
        actions = self.core.take_actions()
        for message, key in actions.messages:
            self.sent.append(message)
            self.keys.append(key)
        for job in actions.submissions:
            self.jobs[job.seq] = self.handed[job.seq] = job
        self.interim_asks += actions.interims
        self.cancelled += actions.cancellations
        for seq in actions.cancellations:
            if self.jobs.pop(seq, None) is not None:
                self.stopping.append(seq)
        assert (actions.ending is not None) == self.core.done
        assert not self.core.take_actions().messages  # handed out once

    def steer(self) -> None:
        """Push in the model and window target, as the driver does before each input."""
        self.core.steer(model=self.model, window_seconds=self.window_seconds)

    def audio(self, pcm: bytes, step: int = 3200) -> None:
        for i in range(0, len(pcm), step):
            self.now += (min(step, len(pcm) - i) / 2) / RATE
            self.steer()
            self.core.receive_audio(pcm[i : i + step], self.now)
            self.take()

    def windows(self, count: int, seconds: float = 1.0) -> None:
        """``count`` windows of speech, each closed by ``Finalize``."""
        for _ in range(count):
            self.audio(tone(440, seconds))
            self.text('{"type":"Finalize"}')

    def text(self, text: str) -> None:
        self.steer()
        self.core.receive_text(text, self.now)
        self.take()

    def answer(self, seq: int, outcome: Outcome | None = None) -> None:
        job = self.jobs.pop(seq)
        if outcome is None:
            outcome = Outcome("ok", job.model, text=f"w{seq}", billed_seconds=1.0, cost_usd=0.01)
        self.core.window_resolved(seq, outcome, self.now)
        self.take()

    def cancel(self, seq: int) -> None:
        self.core.window_resolved(seq, None, self.now)
        self.take()

    def at(self, now: float) -> None:
        self.now = now
        self.core.tick(now)
        self.take()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


def test_begin_first_with_the_window_and_provider() -> None:
    h = Harness()
    assert h.sent[0]["type"] == "Begin"
    assert h.sent[0]["config"]["provider"] == "simulated"
    assert h.sent[0]["config"]["window_seconds"] == 1.0


def test_speech_windows_are_handed_out_silence_is_not() -> None:
    h = Harness()
    h.windows(1)
    h.audio(silence(1.0))
    h.text('{"type":"Finalize"}')
    h.windows(1)
    assert sorted(h.jobs) == [0, 2]  # window 1 (silence) resolved at once
    h.answer(0)
    transcripts = h.of("Transcript")
    assert [(t["seq"], t["status"]) for t in transcripts] == [(0, "ok"), (1, "silence")]


def test_the_vocabulary_is_every_windows_prompt() -> None:
    h = Harness()
    h.windows(2)
    assert [job.prompt for job in h.jobs.values()] == ["Omar, Priya", "Omar, Priya"]


def test_previous_text_joins_the_prompt_only_with_continuity() -> None:
    h = Harness(replace(LIMITS, prompt_continuity=True, max_in_flight=1))
    h.windows(2)
    h.answer(0, Outcome("ok", "whisper-1", text="The roots pull water from the soil."))
    assert h.jobs[1].prompt.startswith("Omar, Priya ") and "soil" in h.jobs[1].prompt


def test_in_flight_bound_and_order_of_starts() -> None:
    h = Harness()
    h.windows(5)
    assert sorted(h.jobs) == [0, 1]
    h.answer(1)
    assert sorted(h.jobs) == [0, 2]
    assert h.of("Transcript") == []  # 1 waits for 0


def test_out_of_order_answers_are_delivered_in_order() -> None:
    h = Harness(replace(LIMITS, max_in_flight=3))
    h.windows(3)
    h.answer(2)
    h.answer(1)
    assert h.of("Transcript") == []
    h.answer(0)
    assert [t["seq"] for t in h.of("Transcript")] == [0, 1, 2]
    assert [t["text"] for t in h.of("Transcript")] == ["w0", "w1", "w2"]


def test_backlog_drops_oldest_unanswered_and_cancels_its_work() -> None:
    h = Harness(replace(LIMITS, max_in_flight=1, max_pending_seconds=2.5))
    h.windows(3)  # 3 s unanswered > 2.5 s: window 0 goes
    assert h.cancelled == [0]
    h.cancel(0)  # its work stopped
    assert sorted(h.jobs) == [1]
    h.answer(1)
    h.answer(2)
    assert [(t["seq"], t["status"], t.get("reason")) for t in h.of("Transcript")] == [
        (0, "dropped", "BACKLOG"),
        (1, "ok", None),
        (2, "ok", None),
    ]


def test_a_late_answer_for_a_dropped_window_is_ignored() -> None:
    h = Harness(replace(LIMITS, max_in_flight=1, max_pending_seconds=2.5))
    h.windows(3)
    h.jobs[0] = h.handed[0]  # its work answers anyway
    h.answer(0)
    assert h.of("Transcript")[0]["status"] == "dropped"
    assert len(h.of("Transcript")) == 1


def test_bad_frames_end_the_session_with_their_codes() -> None:
    h = Harness()
    h.audio(b"\x00\x01\x02")
    assert h.sent[-1]["type"] == "Error" and h.sent[-1]["code"] == "BAD_AUDIO"
    assert h.core.done and h.core.ending is not None and h.core.ending.close_code == 1007
    big = Harness(replace(LIMITS, max_frame_bytes=100))
    big.audio(bytes(200), step=200)
    assert big.core.ending is not None and big.core.ending.close_code == 1009


def test_audio_far_ahead_of_real_time_is_4029_with_the_backlog_dropped() -> None:
    h = Harness(replace(LIMITS, max_pending_seconds=1.0, max_in_flight=1, max_frame_bytes=10**6))
    h.core.receive_audio(tone(440, 2.5), 0.0)  # 2.5 s of audio at time 0
    h.take()
    assert h.core.ending is not None and h.core.ending.close_code == 4029
    assert h.core.done
    statuses = [(t["status"], t.get("reason")) for t in h.of("Transcript")]
    assert all(s == ("dropped", "BACKLOG") for s in statuses) and len(statuses) == 3


def test_empty_frames_are_ignored() -> None:
    h = Harness()
    h.core.receive_audio(b"", 1.0)
    assert h.core.ending is None and h.core.audio_seconds == 0


def test_bad_control_message_is_a_warning_and_the_session_goes_on() -> None:
    h = Harness()
    h.text("nonsense")
    h.text('{"type":"Nope"}')
    assert [m["code"] for m in h.of("Warning")] == ["BAD_MESSAGE", "BAD_MESSAGE"]
    assert h.keys[-1] == "Warning:BAD_MESSAGE"  # coalesced by the outbox
    assert h.core.ending is None


def test_finalize_closes_the_window_now() -> None:
    h = Harness()
    h.audio(tone(440, 0.5))
    h.text('{"type":"Finalize"}')
    assert h.jobs[0].window.from_finalize and h.jobs[0].window.duration == pytest.approx(0.5)


def test_close_stream_flushes_waits_and_terminates_with_the_counts() -> None:
    h = Harness()
    h.audio(tone(440, 1.5) + silence(1.0))
    h.text('{"type":"CloseStream"}')
    assert not h.core.done and h.core.ending is not None
    for seq in sorted(h.jobs):
        h.answer(seq)
    assert h.core.done
    last = h.sent[-1]
    assert last["type"] == "Termination" and last["reason"] == "client_close"
    assert (last["windows"], last["transcribed"], last["silence"], last["dropped"]) == (3, 2, 1, 0)
    assert last["audio_seconds"] == pytest.approx(2.5)
    assert last["cost_usd"] == pytest.approx(0.02)
    assert h.core.ending is CLIENT_CLOSE


def test_finishing_is_bounded_and_drops_what_is_unanswered() -> None:
    h = Harness()
    h.audio(tone(440, 1.0))
    h.core.request_end(SHUTDOWN, h.now)
    h.take()
    assert h.core.next_deadline == pytest.approx(h.now + LIMITS.finish_timeout)
    h.at(h.now + 4.9)
    assert not h.core.done
    h.at(h.now + 0.2)
    assert h.core.done
    assert h.of("Transcript")[0]["reason"] == "SHUTDOWN"
    assert h.sent[-1]["type"] == "Termination" and h.sent[-1]["reason"] == "server_shutdown"


def test_the_first_ending_wins() -> None:
    h = Harness()
    h.audio(tone(440, 1.0))
    h.core.request_end(from_error(Replaced("newer connection")), h.now)
    h.core.request_end(CLIENT_CLOSE, h.now)
    h.take()
    h.answer(0)
    assert h.sent[-1]["type"] == "Error" and h.sent[-1]["code"] == "REPLACED"
    assert h.core.ending is not None and h.core.ending.close_code == 4009


def test_a_vanished_client_gets_nothing_and_its_windows_count_as_dropped() -> None:
    h = Harness()
    h.windows(2)
    sent = len(h.sent)
    h.core.connection_lost(h.now)
    h.take()
    assert h.core.done and h.core.ending is DISCONNECTED
    assert len(h.sent) == sent
    assert sorted(h.cancelled) == [0, 1]
    assert (h.core.counts.windows, h.core.counts.dropped) == (2, 2)


def test_a_client_that_stops_reading_while_finishing_is_abandoned() -> None:
    h = Harness()
    h.audio(tone(440, 1.0))
    h.text('{"type":"CloseStream"}')
    h.core.request_end(SLOW_CONSUMER, h.now)
    h.take()
    assert h.core.done and h.core.ending is SLOW_CONSUMER and h.cancelled == [0]
    assert h.core.counts.dropped == 1


def test_idle_and_expiry_deadlines() -> None:
    h = Harness()
    assert h.core.next_deadline == pytest.approx(10.0)
    h.at(5.0)
    h.text('{"type":"KeepAlive"}')
    assert h.core.next_deadline == pytest.approx(15.0)
    h.at(14.9)
    assert h.core.ending is None
    h.at(15.0)
    assert h.sent[-1]["code"] == "IDLE_TIMEOUT" and h.core.ending is not None
    assert h.core.ending.close_code == 4031
    expiring = Harness(expires_in=3.0)
    assert expiring.core.next_deadline == pytest.approx(3.0)
    expiring.at(3.0)
    assert expiring.sent[-1]["code"] == "SESSION_EXPIRED"


def test_a_budget_refusal_ends_the_session_after_delivering_it() -> None:
    h = Harness()
    h.windows(1)
    h.answer(0, Outcome.dropped(DropReason.BUDGET_EXCEEDED, "whisper-1"))
    assert h.of("Transcript")[0]["reason"] == "BUDGET_EXCEEDED"
    assert h.sent[-1]["type"] == "Error" and h.sent[-1]["code"] == "BUDGET_EXCEEDED"
    assert h.core.ending is not None and h.core.ending.close_code == 4402


@pytest.mark.parametrize("first", ["CloseStream", "shutdown"])
def test_a_budget_refusal_found_while_finishing_outranks_a_clean_end(first: str) -> None:
    """protocol.md: 4402 once earlier windows are delivered, also after CloseStream."""
    h = Harness()
    h.windows(2)
    if first == "CloseStream":
        h.text('{"type":"CloseStream"}')
    else:
        h.core.request_end(SHUTDOWN, h.now)
        h.take()
    h.answer(0)
    h.answer(1, Outcome.dropped(DropReason.BUDGET_EXCEEDED, "whisper-1"))
    assert [m["status"] for m in h.of("Transcript")] == ["ok", "dropped"]
    assert h.sent[-1]["type"] == "Error" and h.sent[-1]["code"] == "BUDGET_EXCEEDED"
    assert h.core.done and h.core.ending is not None and h.core.ending.close_code == 4402
    assert not h.of("Termination")


def test_a_budget_refusal_never_replaces_an_error_or_a_gone_client() -> None:
    h = Harness()
    h.windows(1)
    h.core.fail(Replaced("another session took this group over"), h.now)
    h.take()
    h.answer(0, Outcome.dropped(DropReason.BUDGET_EXCEEDED, "whisper-1"))
    assert h.core.ending is not None and h.core.ending.close_code == 4009
    gone = Harness()
    gone.windows(1)
    gone.core.connection_lost(gone.now)
    gone.take()
    gone.core.window_resolved(0, Outcome.dropped(DropReason.BUDGET_EXCEEDED, "whisper-1"), 1.0)
    assert gone.core.ending is DISCONNECTED and gone.sent[-1]["type"] != "Error"


def test_upstream_notices_are_said_once_until_things_recover() -> None:
    h = Harness()
    h.core.upstream_notice("held", h.now)
    h.core.upstream_notice("held", h.now)
    h.core.upstream_notice("credentials_rejected", h.now)
    h.core.upstream_notice("credentials_rejected", h.now)
    h.core.upstream_notice("rate_limited", 1.0)
    h.core.upstream_notice("rate_limited", 1.0 + RATE_LIMIT_WARNING_INTERVAL / 2)
    h.core.upstream_notice("rate_limited", 1.0 + RATE_LIMIT_WARNING_INTERVAL)
    h.take()
    codes = [m["code"] for m in h.of("Warning")]
    assert codes == ["STT_UNAVAILABLE", "UPSTREAM_REJECTED", "RATE_LIMITED", "RATE_LIMITED"]
    h.windows(1)
    h.answer(0)  # an answer: the upstream is back
    h.core.upstream_notice("held", h.now)
    h.take()
    assert [m["code"] for m in h.of("Warning")][-1] == "STT_UNAVAILABLE"


def test_budget_notice_and_nothing_after_the_last_message() -> None:
    h = Harness()
    h.core.budget_alert(percent_used=80.0, threshold=80, remaining_usd=1.0)
    h.text('{"type":"CloseStream"}')
    h.core.budget_alert(percent_used=95.0, threshold=95, remaining_usd=0.1)
    h.take()
    assert [m["type"] for m in h.sent] == ["Begin", "Budget", "Termination"]


def test_the_model_is_chosen_when_the_window_closes() -> None:
    h = Harness()
    h.windows(1)
    h.model = "whisper-mini"
    h.windows(1)
    assert [h.jobs[s].model for s in (0, 1)] == ["whisper-1", "whisper-mini"]


def test_adaptive_windows_change_the_next_window_never_the_current_one() -> None:
    h = Harness(replace(LIMITS, max_in_flight=3))
    h.audio(tone(440, 0.6))
    h.window_seconds = 2.0  # the upstream is rate limiting: longer windows
    h.audio(tone(440, 0.9))  # 1.5 s of continuous sound: the 1 s window ends at 1.0 s
    h.audio(tone(440, 2.4))
    h.text('{"type":"Finalize"}')
    lengths = [round(h.handed[s].window.duration, 2) for s in sorted(h.handed)]
    assert lengths == [1.0, 2.0, 0.9]


# -- the state machine ------------------------------------------------------

FRAMES = {
    "speech": tone(300, 0.1),
    "quiet": silence(0.1),
    "long speech": tone(440, 0.7),
    "odd": b"\x01\x02\x03",
}
CONTROL = ['{"type":"KeepAlive"}', '{"type":"Finalize"}', "junk"]


class SessionMachine(RuleBasedStateMachine):
    """Random interleavings of audio, control messages, answers, endings and time."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(replace(LIMITS, max_pending_seconds=3.0))
        self.received = 0.0
        self.steps = 0

    @rule(kind=st.sampled_from(sorted(FRAMES)), dt=st.floats(0.0, 1.0))
    def audio(self, kind: str, dt: float) -> None:
        h = self.h
        h.now += dt
        was_reading = h.core.ending is None
        h.core.receive_audio(FRAMES[kind], h.now)
        h.take()
        if was_reading and len(FRAMES[kind]) % 2 == 0:
            self.received += len(FRAMES[kind]) / 2 / RATE

    @rule(text=st.sampled_from(CONTROL))
    def control(self, text: str) -> None:
        self.h.text(text)

    @precondition(lambda self: self.h.jobs)
    @rule(data=st.data(), how=st.sampled_from(["ok", "dropped", "budget", "cancel"]))
    def answer(self, data: st.DataObject, how: str) -> None:
        seq = data.draw(st.sampled_from(sorted(self.h.jobs)))
        if how == "cancel":
            self.h.jobs.pop(seq)
            self.h.cancel(seq)
        elif how == "ok":
            self.h.answer(seq)
        else:
            reason = DropReason.BUDGET_EXCEEDED if how == "budget" else DropReason.STT_UNAVAILABLE
            self.h.answer(seq, Outcome.dropped(reason, "whisper-1"))

    @precondition(lambda self: self.h.stopping)
    @rule()
    def cancelled_work_ends(self) -> None:
        self.h.cancel(self.h.stopping.pop(0))

    @rule(dt=st.floats(0.0, 2.0))
    def time_passes(self, dt: float) -> None:
        self.h.at(self.h.now + dt)

    @precondition(lambda self: self.steps > 20)
    @rule(dt=st.floats(2.0, 12.0))
    def long_wait(self, dt: float) -> None:
        self.h.at(self.h.now + dt)

    @precondition(lambda self: self.steps > 15)
    @rule(which=st.sampled_from(["close", "shutdown", "replaced", "gone", "slow"]))
    def end(self, which: str) -> None:
        h = self.h
        if which == "close":
            h.text('{"type":"CloseStream"}')
            return
        ending = {
            "shutdown": SHUTDOWN,
            "replaced": from_error(Replaced("newer")),
            "gone": DISCONNECTED,
            "slow": SLOW_CONSUMER,
        }[which]
        h.core.request_end(ending, h.now)
        h.take()

    @invariant()
    def count_steps(self) -> None:
        self.steps += 1

    @invariant()
    def seqs_contiguous_and_windows_tile(self) -> None:
        transcripts = self.h.of("Transcript")
        assert [t["seq"] for t in transcripts] == list(range(len(transcripts)))
        position = 0.0
        for t in transcripts:
            assert t["start"] == pytest.approx(position, abs=1e-3)
            assert t["end"] > t["start"]
            position = t["end"]

    @invariant()
    def one_last_message_and_nothing_after_it(self) -> None:
        types = [m["type"] for m in self.h.sent]
        assert types[0] == "Begin" and types.count("Begin") == 1
        last = [i for i, kind in enumerate(types) if kind in ("Termination", "Error")]
        assert len(last) <= 1
        if last:
            assert last[0] == len(types) - 1 and self.h.core.done

    @invariant()
    def in_flight_is_bounded(self) -> None:
        assert len(self.h.jobs) + len(self.h.stopping) <= LIMITS.max_in_flight

    def teardown(self) -> None:
        h = self.h
        if not h.core.done:  # a client that says CloseStream and waits
            h.text('{"type":"CloseStream"}')
            h.at(h.now + LIMITS.finish_timeout + 1)
        core = h.core
        assert core.done and core.ending is not None
        types = [m["type"] for m in h.sent]
        if core.ending.gone:
            assert "Termination" not in types and "Error" not in types
        else:
            expected = "Error" if core.ending.error is not None else "Termination"
            assert types[-1] == expected
            assert len(h.of("Transcript")) == core.counts.windows
            if expected == "Termination" and core.audio_seconds:
                assert h.of("Transcript")[-1]["end"] == pytest.approx(core.audio_seconds)
                assert h.sent[-1]["windows"] == core.counts.windows
        assert core.audio_seconds == pytest.approx(self.received, abs=1e-6)
        assert core.counts.windows == core.counts.ok + core.counts.silence + core.counts.dropped
        assert not len(core._flow) or core.ending.gone


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
