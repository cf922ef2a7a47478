"""One streaming session's rules, without I/O (sans-I/O, like python-websockets' protocol).

The driver (:mod:`gateway.web.listen.session`) feeds it what happened, each with the
time ``now`` (monotonic seconds), pushes in what the services decide (the model a window
is sent to, the window target: :meth:`~SessionCore.steer`), and takes out what to do with
:meth:`~SessionCore.take_actions` — messages to send, windows to transcribe, work to
cancel, and once the session is over its ending — plus the
:attr:`~SessionCore.next_deadline` for :meth:`~SessionCore.tick`. The core never calls
out and keeps nothing the driver must clear. Every window gets exactly one ``Transcript``
(or, when the client is gone, is counted as dropped); a session ends once.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.tokens import Claims
from gateway.errors import BudgetExhausted, Replaced, StreamError
from gateway.stream import protocol
from gateway.stream.actions import Actions, Submission
from gateway.stream.audio_window import Window
from gateway.stream.ending import CLIENT_CLOSE, DISCONNECTED, Ending, from_error, outranks
from gateway.stream.flow import WindowFlow
from gateway.stream.frames import AudioGate
from gateway.stream.interims import InterimRequest, InterimSchedule
from gateway.stream.notices import Notices
from gateway.stream.observer import NoObserver, Observer
from gateway.stream.outcome import DropReason, Outcome
from gateway.stream.outgoing import Outgoing
from gateway.stream.start import SessionStart

BAD_MESSAGE = "expected a JSON object with type KeepAlive, Finalize or CloseStream"


class SessionCore:
    def __init__(self, start: SessionStart, now: float, observer: Observer | None = None) -> None:
        claims, config, limits = start.claims, start.config, start.limits
        assert claims.school_id is not None and claims.group_id is not None
        self.start = start
        self.session_id = start.session_id
        self.school_id, self.group_id = claims.school_id, claims.group_id
        self.config = config
        self._limits = limits
        self._target = start.window_seconds
        self._model = start.model
        self._observer: Observer = observer or NoObserver()
        self._flow = WindowFlow(limits, self._observer, start.vocabulary, start.counts())
        self._queue = self._flow.queue
        self._windower = start.windower()
        self._gate = AudioGate(config, limits, now - start.audio_offset)
        self._clock = start.deadlines(now)
        self._unreported_bytes = 0
        self._notices = Notices()
        self.counts = self._flow.counts
        self.ending: Ending | None = None
        #: The session is over: the last message is queued (or the client is gone).
        self.done = False
        self._out = Outgoing()
        self._submissions: list[Submission] = []
        interval = start.interim_interval
        self._interims = InterimSchedule(interval, now) if interval else None
        self._interim_asks: list[InterimRequest] = []
        self._resume = start.resumable()
        self._out.send(self._begin(claims, resumed=start.settled is not None))
        for message in start.after_begin():
            self._out.send(message)

    def _begin(self, claims: Claims, *, resumed: bool) -> dict[str, Any]:
        at = self.audio_seconds
        return self.start.begin(claims, window_seconds=self._target, resumed=resumed, at=at)

    # -- state ---------------------------------------------------------------

    @property
    def audio_seconds(self) -> float:
        return self._windower.received_samples / self.config.sample_rate

    @property
    def detached(self) -> bool:
        """Its connection went away; the session waits for its client to resume."""
        return self._resume.detached

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: no deadline)."""
        if self.done:
            return None
        return self._resume.detached_until or self._clock.next(reading=self.ending is None)

    @property
    def has_output(self) -> bool:
        """Whether :meth:`take_actions` has anything to hand out."""
        waiting = self._out or self._submissions or self._interim_asks
        return bool(waiting or self._queue.cancelled) or self.done

    # -- output --------------------------------------------------------------

    def take_actions(self) -> Actions:
        """What the driver must do now, handed out once: the core forgets it."""
        actions = Actions(
            self._out.take(),
            self._submissions,
            self._queue.take_cancelled(),
            self.ending if self.done else None,
            self._interim_asks,
        )
        self._submissions, self._interim_asks = [], []
        return actions

    def steer(self, *, model: str, window_seconds: float) -> None:
        """The model the next windows are sent to (a downgrade) and the target of the next
        window (adaptive); a window already open keeps its length."""
        self._model = model
        self._target = window_seconds

    # -- input ---------------------------------------------------------------

    def receive_audio(self, data: bytes, now: float) -> None:
        # The path of every audio frame: kept to plain arithmetic and one call.
        if self.ending is not None or not data:
            return
        size, gate = len(data), self._gate
        if size > gate.max_frame_bytes or size % gate.sample_bytes:
            self.fail(gate.refusal(size), now)
            return
        self._clock.last_activity = now
        self._unreported_bytes += size
        if gate.suspect is not None:
            suspect = gate.judge(data, now)
            if suspect is not None:
                self._out.notify(protocol.warning("SUSPECT_AUDIO", suspect))
        windows = self._windower.feed(data)
        if windows:
            self._closed(windows, now)
        too_far = gate.too_far_ahead(self._windower.received_samples, now)
        if too_far is not None:
            self.fail(too_far, now)
        elif self._interims is not None and self._interims.due(now):
            self._ask_interim(self._interims, now)

    def _ask_interim(self, interims: InterimSchedule, now: float) -> None:
        prompt = self._flow.prompt_for(self._windower.open_seq)
        request = interims.consider(self._windower, prompt, now)
        if request is not None:
            self._interim_asks.append(request)

    def interim_resolved(
        self, request: InterimRequest, text: str | None, now: float, *, busy: bool = False
    ) -> None:
        """The interim decode of ``request`` ended: its text, or None (``busy``: skipped)."""
        assert self._interims is not None
        message = self._interims.resolved(request, text, now, busy=busy)
        if message is not None and self.ending is None:
            self._out.send(message)

    def _closed(self, windows: list[Window], now: float) -> None:
        """Windows closed: queue them; the next window follows the current target (adaptive
        windows change between windows, never inside one)."""
        self._report_audio()
        for window in windows:
            self._flow.add(window, self._model, now, None)
            if self._interims is not None:
                self._interims.window_closed(window.seq)
        self._windower.window_seconds = self._target
        self._pump(now)

    def receive_text(self, text: str, now: float) -> None:
        if self.ending is not None:
            return
        kind = protocol.parse_control(text)
        if kind == "KeepAlive":
            self._clock.last_activity = now
        elif kind == "Finalize":
            self._closed(self._windower.finalize(), now)
        elif kind == "CloseStream":
            self.request_end(CLIENT_CLOSE, now)
        else:
            self._out.notify(protocol.warning("BAD_MESSAGE", BAD_MESSAGE))

    def tick(self, now: float) -> None:
        """Deadlines: the token's expiry, idleness, the bound on finishing, and the wait for
        a client that went away."""
        until = self._resume.detached_until
        if until is not None:
            if now >= until:
                self.request_end(DISCONNECTED, now)
        elif self.ending is None:
            error = self._clock.expired(now)
            if error is not None:
                self.fail(error, now)
        elif not self.done and self._clock.finishing_over(now):
            self._queue.drop_unanswered(DropReason(self.ending.timeout_reason))
            self._pump(now)

    def window_resolved(self, seq: int, outcome: Outcome | None, now: float) -> None:
        """The work on window ``seq`` ended with ``outcome`` (None: cancelled, no answer)."""
        self._flow.resolved(seq, outcome)
        if self._interims is not None:
            self._interims.final_done(now)
        if outcome is not None:
            if outcome.reason is DropReason.BUDGET_EXCEEDED:
                exhausted = BudgetExhausted("the school's daily transcription budget is used up")
                self.request_end(from_error(exhausted), now)
            if outcome.status == "ok":
                self._notices.recovered()
        self._pump(now)

    def fail(self, error: StreamError, now: float) -> None:
        self.request_end(from_error(error), now)

    def connection_lost(self, now: float) -> None:
        """The connection went away without ``CloseStream``: the session waits
        ``resume_seconds`` for its client (its open window closed at the audio received,
        the rest transcribed and kept), or ends now when it cannot be resumed."""
        if self.ending is not None or not self._resume.seconds:
            self.request_end(DISCONNECTED, now)
            return
        self._closed(self._windower.finalize(), now)
        self._resume.detached_until = now + self._resume.seconds

    def resumed(self, claims: Claims, last_seq: int, now: float, expires_in: float) -> None:
        """A client continues the session (``claims``: its token, maybe a new one): ``Begin``
        with the audio the session has, then the kept Transcripts after ``last_seq``."""
        self._resume.detached_until = None
        self._out.take()
        self._clock.last_activity, self._clock.expires_at = now, now + expires_in
        self._out.send(self._begin(claims, resumed=True))
        for transcript in self._resume.after(last_seq):
            self._out.send(transcript)
        self._pump(now)

    def hand_over(self, now: float) -> None:
        """Another replica resumes this session: finish the windows in flight (bounded),
        then end with ``REPLACED`` — to a client still here, else to nobody."""
        self.request_end(from_error(Replaced("the session was resumed elsewhere")), now)

    def request_end(self, ending: Ending, now: float) -> None:
        """End the session; the first ending wins, unless a later one outranks it (a budget
        exhaustion over a clean end). A client that is still there gets its pending windows
        (bounded by ``finish_timeout``) and then the last message."""
        if self.ending is not None:
            if ending.gone and not self.done:
                self._abandon(ending)  # the client left while its last windows were finishing
            elif not self.done and outranks(ending, self.ending):
                self.ending = ending  # the same finish, another last message and close code
            return
        self.ending = ending
        self._resume.detached_until = None  # finishing has its own bound (to nobody if away)
        self._report_audio()
        if ending.gone:
            self._abandon(ending)
            return
        drop = DropReason.BACKLOG if ending.drops_backlog else None
        for window in self._windower.close():
            self._flow.add(window, self._model, now, drop)
        if drop is not None:
            self._queue.drop_unanswered(drop)
        self._clock.finish_by = now + self._limits.finish_timeout
        self._pump(now)

    def upstream_notice(self, kind: str, now: float) -> None:
        """``rate_limited``, ``held`` or ``credentials_rejected``: a Warning, coalesced."""
        self._out.notify(self._notices.about(kind, now))

    def budget_alert(self, **alert: Any) -> None:
        """The school crossed an alert threshold: tell this classroom."""
        self._out.notify(protocol.budget(**alert))

    # -- inside --------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Hand out what may start; deliver what is ready, in order; finish when all is."""
        if self.done:
            return
        self._submissions += self._flow.startable()
        for transcript in self._flow.deliverable(now):
            self._out.send(transcript)
            self._resume.keep(transcript)
        if self.ending is not None and not len(self._flow):  # all delivered: the last message
            self._out.send(self.ending.last_message(self.audio_seconds, self.counts))
            self._out.closed = self.done = True

    def _abandon(self, ending: Ending) -> None:
        """The client is gone: nothing more is sent; undelivered windows count as dropped."""
        self.ending = ending
        self._flow.abandon()
        self._out.drop()
        self.done = True

    def _report_audio(self) -> None:
        """Received audio goes to the counter in batches (a locked increment per frame is waste)."""
        if self._unreported_bytes:
            self._observer.audio_received(self._unreported_bytes / 2 / self.config.sample_rate)
            self._unreported_bytes = 0
