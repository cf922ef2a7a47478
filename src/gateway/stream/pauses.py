"""Where speakers pause: choosing a window's end, and shortening pauses before upload (pure).

Everything works on 20 ms frame levels (see :mod:`gateway.stream.vad`): a
frame is *voiced* above the stream's threshold, and a *pause* is a run of
unvoiced frames. Positions are frame indices from the start of the window.

A window ends in the middle of the best pause (the longest, then the
quietest) once it is long enough; it may run a little past its target to
reach one, and with no pause at all it ends at the quietest frame. Inside a
window, a pause longer than twice :data:`PAUSE_PAD_SECONDS` keeps that much
on each side of the speech and loses its middle in the audio sent upstream:
Whisper hears every word, the school pays for speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.stream.vad import FRAME_SECONDS

#: A window may end at a pause once it is this fraction of its target.
MIN_WINDOW_FRACTION = 0.5
#: Without a pause by the target, a window waits this fraction of its target for one.
OVERRUN_FRACTION = 0.3
#: A run of unvoiced frames this long is a pause between words or sentences.
MIN_PAUSE_SECONDS = 0.2
#: A pause under way at the target is awaited until it is this long (it may be the sentence's end).
SETTLE_PAUSE_SECONDS = 0.4
#: Audio kept on each side of speech when a pause is shortened.
PAUSE_PAD_SECONDS = 0.16
#: Frames within this of the quietest count as equally quiet (the one nearest the target wins).
LEVEL_STEP_DB = 1.0


@dataclass(frozen=True, slots=True)
class Run:
    """Frames ``[start, end)`` that are all unvoiced."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def middle(self) -> int:
        return (self.start + self.end) // 2


@dataclass(frozen=True, slots=True)
class CutRule:
    """A window's length rules, in frames."""

    minimum: int
    target: int
    hard: int
    min_pause: int
    settle: int
    lead_in: int

    @classmethod
    def for_window(
        cls, target_seconds: float, max_seconds: float, shortest_seconds: float = 0.0
    ) -> CutRule:
        shortest = max(1, math.ceil(shortest_seconds / FRAME_SECONDS - 1e-9))
        target = max(shortest, round(target_seconds / FRAME_SECONDS))
        ceiling = max(target, int(max_seconds / FRAME_SECONDS + 1e-9))
        return cls(
            minimum=max(shortest, round(target * MIN_WINDOW_FRACTION)),
            target=target,
            hard=min(ceiling, target + round(target * OVERRUN_FRACTION)),
            min_pause=max(1, round(MIN_PAUSE_SECONDS / FRAME_SECONDS)),
            settle=max(1, round(SETTLE_PAUSE_SECONDS / FRAME_SECONDS)),
            lead_in=round(PAUSE_PAD_SECONDS / FRAME_SECONDS),
        )


def unvoiced_runs(voiced: npt.NDArray[np.bool_]) -> list[Run]:
    """Every maximal run of unvoiced frames."""
    if voiced.size == 0:
        return []
    padded = np.concatenate(([True], voiced, [True]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [Run(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def choose_cut(levels: npt.NDArray[np.float64], threshold_dbfs: float, rule: CutRule) -> int | None:
    """The frame index where the window of these ``levels`` ends now, or None to wait.

    ``levels`` are the window's frames so far (at least ``rule.target`` of
    them when this is asked). The answer is at least one frame, at most
    ``rule.hard``; it is None only while fewer than ``rule.hard`` frames are in.
    """
    count = levels.size
    if count < rule.target:
        return None
    seen = levels[: rule.hard]
    runs = unvoiced_runs(seen > threshold_dbfs)
    final = count >= rule.hard
    if not final and runs and runs[-1].end == seen.size and runs[-1].length < rule.settle:
        return None  # a pause is under way: see how long it gets
    pauses = [r for r in runs if r.length >= rule.min_pause and r.end > rule.minimum]
    if pauses:
        best = max(pauses, key=lambda r: (r.length, -float(seen[r.start : r.end].mean())))
        if best.start == 0 and best.end == seen.size:
            return seen.size  # nothing but pause so far: a silent window of the target length
        return _cut_in(best, rule)
    if not final:
        return None
    return _quietest(seen, rule)


def _cut_in(run: Run, rule: CutRule) -> int:
    """Where a window ends in ``run``: its middle, or just before the speech that follows
    a window that is all pause so far (keeping a lead-in); never before ``rule.minimum``."""
    if run.start == 0:
        return max(rule.minimum, run.end - rule.lead_in)
    return max(rule.minimum, run.middle)


def _quietest(levels: npt.NDArray[np.float64], rule: CutRule) -> int:
    """The boundary after the quietest frame in ``[minimum, hard)``, nearest the target on ties."""
    lo = min(rule.minimum, levels.size - 1)
    span = levels[lo:]
    ends = np.flatnonzero(span <= span.min() + LEVEL_STEP_DB) + lo + 1
    return int(ends[np.argmin(np.abs(ends - rule.target))])


def kept_spans(voiced: npt.NDArray[np.bool_], pad: int) -> list[tuple[int, int]]:
    """Frame spans ``[start, end)`` to send upstream: all but the middles of long pauses.

    Every voiced frame is kept, with ``pad`` frames of pause on each side of
    speech; a pause at the window's edge keeps only the side next to speech. A
    window without a voiced frame is kept whole (it is not sent anyway).
    """
    count = voiced.size
    if count == 0 or not voiced.any():
        return [(0, count)] if count else []
    spans: list[tuple[int, int]] = []
    start = 0
    for run in unvoiced_runs(voiced):
        keep_before = 0 if run.start == 0 else pad
        keep_after = 0 if run.end == count else pad
        if run.length <= keep_before + keep_after:
            continue
        cut_from, cut_to = run.start + keep_before, run.end - keep_after
        if cut_from > start:
            spans.append((start, cut_from))
        start = cut_to
    if start < count:
        spans.append((start, count))
    return spans
