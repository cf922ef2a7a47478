"""Cut a PCM stream into windows (pure: no I/O, no clock).

Windows tile the stream exactly: window 0 starts at sample 0, window n+1
starts where window n ends, and after :meth:`Windower.close` the last window
ends at the total number of samples received. A window closes when it reaches
the current window length (at a pause in speech near the end when there is
one, so words are not cut), on ``finalize()`` and on ``close()``. Audio
shorter than ``MIN_WINDOW_SECONDS`` is carried into the next window, or
reported as a silent window at the end of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.stream.vad import (
    NoiseFloor,
    VadParams,
    frame_levels_dbfs,
    levels_are_speech,
    quiet_cut,
)

MIN_WINDOW_SECONDS = 0.1
#: How far back from the target length a window may end early at a pause.
PAUSE_SEARCH_SECONDS = 1.0
PAUSE_SEARCH_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class Window:
    """One closed window of audio, ready for transcription."""

    seq: int
    start_sample: int
    end_sample: int
    sample_rate: int
    pcm: bytes
    from_finalize: bool
    speech: bool

    @property
    def start(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def duration(self) -> float:
        return (self.end_sample - self.start_sample) / self.sample_rate


class Windower:
    """Accumulates mono s16le PCM and hands out :class:`Window` objects."""

    def __init__(
        self,
        sample_rate: int,
        window_seconds: float,
        vad: VadParams | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.window_seconds = window_seconds
        self._vad = vad or VadParams()
        self._floor = NoiseFloor.quiet_room(self._vad)
        self._adapted = self._vad
        # One buffer per stream, grown to about a window (plus a frame) and then reused:
        # no reallocation churn per frame, so the allocator keeps no stale copies.
        self._buffer = bytearray()
        self._fill = 0
        self._start_sample = 0
        self._next_seq = 0
        self._closed = False
        self.min_samples = max(1, round(MIN_WINDOW_SECONDS * sample_rate))

    @property
    def received_samples(self) -> int:
        return self._start_sample + self._fill // 2

    @property
    def buffered_samples(self) -> int:
        return self._fill // 2

    @property
    def buffered_seconds(self) -> float:
        return self.buffered_samples / self.sample_rate

    @property
    def target_samples(self) -> int:
        return max(self.min_samples, round(self.window_seconds * self.sample_rate))

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[Window]:
        """Add audio (whole samples); return the windows that closed."""
        if self._closed:
            raise RuntimeError("windower is closed")
        if len(pcm) % 2:
            raise ValueError("PCM must hold whole 16-bit samples")
        end = self._fill + len(pcm)
        if end > len(self._buffer):
            # Grow once to a whole window (and two frames of slack), not frame by frame.
            size = max(end, self.target_samples * 2 + 6400)
            self._buffer.extend(bytes(size - len(self._buffer)))
        self._buffer[self._fill : end] = pcm
        self._fill = end
        target = self.target_samples
        if end < target * 2:
            return []
        out: list[Window] = []
        while self._fill >= target * 2:
            out.append(self._emit(self._cut_point(target), from_finalize=False))
        return out

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

    def _cut_point(self, target: int) -> int:
        search = min(
            round(PAUSE_SEARCH_SECONDS * self.sample_rate), round(target * PAUSE_SEARCH_FRACTION)
        )
        lo = max(self.min_samples, target - search)
        with memoryview(self._buffer) as view:
            cut = quiet_cut(view[: self._fill], self.sample_rate, self._adapted, lo, target)
        return target if cut is None else cut

    def _emit(self, samples: int, *, from_finalize: bool) -> Window:
        nbytes = samples * 2
        with memoryview(self._buffer) as view:
            pcm = bytes(view[:nbytes])  # one copy, not a slice and then a copy
        rest = self._fill - nbytes
        if rest:
            self._buffer[:rest] = self._buffer[nbytes : self._fill]
        self._fill = rest
        start = self._start_sample
        self._start_sample += samples
        long_enough = samples >= self.min_samples
        speech = False
        if long_enough:
            levels = frame_levels_dbfs(pcm, self.sample_rate)
            speech = levels_are_speech(levels, samples / self.sample_rate, self._adapted)
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
        )
        self._next_seq += 1
        return window
