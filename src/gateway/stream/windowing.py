"""Cut a PCM stream into windows (pure: no I/O, no clock).

Windows tile the stream exactly: window 0 starts at sample 0, window n+1
starts where window n ends, and after :meth:`Windower.close` the last window
ends at the total number of samples received. A window ends in a pause of
speech near its target length (see :mod:`gateway.stream.pauses`), on
``finalize()`` and on ``close()``. Audio shorter than ``MIN_WINDOW_SECONDS``
is carried into the next window, or reported as a silent window at the end of
the stream. Each window carries the audio to send upstream: its own, with
long pauses shortened.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from gateway.stream.audio_window import Window
from gateway.stream.pauses import (
    OVERRUN_FRACTION,
    PAUSE_PAD_SECONDS,
    CutRule,
    choose_cut,
    kept_spans,
)
from gateway.stream.vad import (
    FRAME_SECONDS,
    NoiseFloor,
    VadParams,
    enough_voiced,
    frame_levels_dbfs,
)

MIN_WINDOW_SECONDS = 0.1


class Windower:
    """Accumulates mono s16le PCM and hands out :class:`Window` objects."""

    def __init__(
        self,
        sample_rate: int,
        window_seconds: float,
        vad: VadParams | None = None,
        *,
        max_seconds: float | None = None,
        shorten_pauses: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self.min_samples = max(1, round(MIN_WINDOW_SECONDS * sample_rate))
        self._window_seconds = 0.0
        self._target = self.min_samples
        self._rule_now: CutRule | None = None
        self.window_seconds = window_seconds
        self.max_seconds = max_seconds if max_seconds is not None else 3 * window_seconds
        self._vad = vad or VadParams()
        self._floor = NoiseFloor.quiet_room(self._vad)
        self._adapted = self._vad
        self._shorten = shorten_pauses
        self._frame = max(1, int(sample_rate * FRAME_SECONDS))
        self._pad_frames = round(PAUSE_PAD_SECONDS / FRAME_SECONDS)
        # One buffer per stream, grown to about a window (plus a frame) and then reused:
        # no reallocation churn per frame, so the allocator keeps no stale copies.
        self._buffer = bytearray()
        self._fill = 0
        # Levels of the buffer's whole 20 ms frames, computed once each, only near a window's end.
        self._levels: npt.NDArray[np.float64] = np.empty(0)
        self._leveled = 0
        #: Frames of the current window already known not to end it (under ``_rule``), and
        #: how many unvoiced frames end them.
        self._undecided = 0
        self._rule: CutRule | None = None
        self._trail = 0
        self._start_sample = 0
        self._next_seq = 0
        self._closed = False

    @property
    def received_samples(self) -> int:
        return self._start_sample + self._fill // 2

    @property
    def buffered_samples(self) -> int:
        return self._fill // 2

    @property
    def open_seq(self) -> int:
        """The seq of the window still open (the next one to close)."""
        return self._next_seq

    @property
    def open_start_sample(self) -> int:
        return self._start_sample

    def open_audio(self) -> bytes:
        """A copy of the open window's audio so far."""
        return bytes(self._buffer[: self._fill])

    def voiced_since(self, sample: int) -> bool:
        """Whether the open window has a voiced 20 ms frame from stream ``sample`` on (the
        levels are the ones the cut needs anyway, computed once each)."""
        levels = self._whole_frame_levels()
        first = max(0, (sample - self._start_sample) // self._frame)
        return bool(levels.size > first and (levels[first:] > self._adapted.threshold_dbfs).any())

    def continue_at(self, seq: int, sample: int) -> None:
        """Go on from window ``seq`` at stream ``sample`` (a session taken over)."""
        assert not self._fill
        self._next_seq, self._start_sample = seq, sample

    @property
    def window_seconds(self) -> float:
        """The target length; the session sets it before each message (adaptive windows)."""
        return self._window_seconds

    @window_seconds.setter
    def window_seconds(self, value: float) -> None:
        if value != self._window_seconds:  # set on every message: only a change costs
            self._window_seconds = value
            self._target = max(self.min_samples, round(value * self.sample_rate))
            self._rule_now = None

    @property
    def target_samples(self) -> int:
        return self._target

    @property
    def threshold_dbfs(self) -> float:
        """The voicing threshold in use (the stream's noise floor plus a margin)."""
        return self._adapted.threshold_dbfs

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[Window]:
        """Add audio (whole samples); return the windows that closed."""
        if self._closed:
            raise RuntimeError("windower is closed")
        if len(pcm) % 2:
            raise ValueError("PCM must hold whole 16-bit samples")
        end = self._fill + len(pcm)
        if end > len(self._buffer):
            # Grow to a whole window (and two frames of slack), then, only if a window runs
            # past its target to reach a pause, to the longest the rules allow; never frame
            # by frame. A silent stream keeps the smaller buffer.
            one_window = self._target * 2 + 6400
            size = max(end, one_window)
            if end > one_window:
                longest = min(self.max_seconds, self.window_seconds * (1 + OVERRUN_FRACTION))
                size = max(end, round(longest * self.sample_rate) * 2 + 6400)
            self._buffer.extend(bytes(size - len(self._buffer)))
        self._buffer[self._fill : end] = pcm
        self._fill = end
        if end < self._target * 2:
            return []
        out: list[Window] = []
        rule = self._rule_now
        if rule is None:
            rule = CutRule.for_window(self.window_seconds, self.max_seconds, MIN_WINDOW_SECONDS)
            self._rule_now = rule
        while (cut := self._next_cut(rule)) is not None:
            out.append(self._emit(cut * self._frame, from_finalize=False))
        return out

    def _next_cut(self, rule: CutRule) -> int | None:
        """Ask frame by frame, as if the audio had come 20 ms at a time: the windows do not
        depend on how the client splits its audio into messages.

        Between two frames the answer can only change when a pause ends, when a pause
        under way reaches ``rule.settle``, or at ``rule.hard``; only then is it asked again
        (the same answers as asking at every frame, at a fraction of the cost).
        """
        levels = self._whole_frame_levels()
        if levels.size < rule.target:
            return None
        threshold = self._adapted.threshold_dbfs
        first = self._undecided < rule.target or rule != self._rule
        if first:
            self._undecided = rule.target - 1
            self._trail = _trailing_unvoiced(levels[: rule.target - 1], threshold)
            self._rule = rule
        for count in range(self._undecided + 1, levels.size + 1):
            voiced = bool(levels[count - 1] > threshold)
            ended = voiced and self._trail > 0
            self._trail = 0 if voiced else self._trail + 1
            if first or ended or self._trail == rule.settle or count >= rule.hard:
                cut = choose_cut(levels[:count], threshold, rule)
                if cut is not None:
                    return cut
            first = False
            self._undecided = count
        return None

    def finalize(self) -> list[Window]:
        """Close the current window now, unless it is shorter than the minimum."""
        if self._closed or self.buffered_samples < self.min_samples:
            return []
        return [self._emit(self.buffered_samples, from_finalize=True)]

    def close(self) -> list[Window]:
        """End of stream: every remaining sample goes into a last window."""
        if self._closed:
            return []
        self._closed = True
        if self.buffered_samples == 0:
            return []
        return [self._emit(self.buffered_samples, from_finalize=True)]

    def _whole_frame_levels(self) -> npt.NDArray[np.float64]:
        """Levels of every whole frame in the buffer, computing only the new ones."""
        count = self.buffered_samples // self._frame
        if count > self._leveled:
            if count > self._levels.size:
                grown = np.empty(count + 64)
                grown[: self._leveled] = self._levels[: self._leveled]
                self._levels = grown
            lo, hi = self._leveled * self._frame * 2, count * self._frame * 2
            with memoryview(self._buffer) as view:
                fresh = frame_levels_dbfs(view[lo:hi], self.sample_rate)
            self._levels[self._leveled : count] = fresh
            self._leveled = count
        return self._levels[:count]

    def _window_levels(self, samples: int) -> npt.NDArray[np.float64]:
        """Levels of the first ``samples`` of the buffer (whole frames, and a partial last one)."""
        whole = samples // self._frame
        if whole <= self._leveled and samples % self._frame == 0:
            return self._levels[:whole].copy()
        with memoryview(self._buffer) as view:
            return frame_levels_dbfs(view[: samples * 2], self.sample_rate)

    def _emit(self, samples: int, *, from_finalize: bool) -> Window:
        nbytes = samples * 2
        long_enough = samples >= self.min_samples
        levels = self._window_levels(samples) if long_enough else np.empty(0)
        voiced = levels > self._adapted.threshold_dbfs
        voiced_seconds = float(np.count_nonzero(voiced)) * FRAME_SECONDS
        speech = long_enough and enough_voiced(
            voiced_seconds, samples / self.sample_rate, self._adapted
        )
        with memoryview(self._buffer) as view:
            if speech and self._shorten:
                pcm = self._without_long_pauses(view[:nbytes], voiced)
            else:
                pcm = bytes(view[:nbytes])  # one copy, not a slice and then a copy
        rest = self._fill - nbytes
        if rest:
            self._buffer[:rest] = self._buffer[nbytes : self._fill]
        self._fill = rest
        self._shift_levels(samples)
        self._undecided = 0
        start = self._start_sample
        self._start_sample += samples
        if long_enough:
            self._floor.update(levels)
            threshold = self._floor.threshold(self._vad)
            if threshold != self._adapted.threshold_dbfs:
                self._adapted = replace(self._vad, threshold_dbfs=threshold)
        window = Window(
            seq=self._next_seq,
            start_sample=start,
            end_sample=start + samples,
            sample_rate=self.sample_rate,
            pcm=pcm,
            from_finalize=from_finalize,
            speech=speech,
            voiced_seconds=voiced_seconds,
        )
        self._next_seq += 1
        return window

    def _without_long_pauses(self, audio: memoryview, voiced: npt.NDArray[np.bool_]) -> bytes:
        frame_bytes = self._frame * 2
        spans = kept_spans(voiced, self._pad_frames)
        if len(spans) == 1 and spans[0] == (0, voiced.size):
            return bytes(audio)
        # The last frame may be partial (a finalized window): it ends with the audio.
        parts = [
            audio[a * frame_bytes : len(audio) if b == voiced.size else b * frame_bytes]
            for a, b in spans
        ]
        return b"".join(parts)

    def _shift_levels(self, samples: int) -> None:
        """Keep the cached levels of the audio left in the buffer (cuts are frame-aligned)."""
        if samples % self._frame or not self._fill:
            self._leveled = 0
            return
        dropped = samples // self._frame
        kept = max(0, self._leveled - dropped)
        if kept:
            self._levels[:kept] = self._levels[dropped : self._leveled]
        self._leveled = kept


def _trailing_unvoiced(levels: npt.NDArray[np.float64], threshold: float) -> int:
    """How many frames at the end of ``levels`` are unvoiced."""
    voiced = np.flatnonzero(levels > threshold)
    return int(levels.size - (voiced[-1] + 1 if voiced.size else 0))
