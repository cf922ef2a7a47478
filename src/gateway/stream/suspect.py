"""Audio that does not look like what the stream declared (pure, no I/O).

Two mistakes are common and can be told apart from speech with confidence:

- **32-bit float samples sent as ``pcm_s16le``** (a Web Audio ``Float32Array``'s buffer
  sent as is): read as float32, such bytes are finite values within [-1, 1], nearly
  all of them; 16-bit integer audio read that way is mostly tiny, huge or NaN.
- **A live source at another rate** (a 48 kHz microphone declared as 16 kHz, never
  resampled): a live stream arrives in real time, so its samples per wall-clock second
  are its true rate. Arrival that stays within a few percent of a standard rate other
  than the declared one, second after second, is that source. A file sent as fast as
  the network allows arrives unevenly and is never taken for one.

The spectrum alone cannot say the rate: a child's voice slowed 3× sounds like an
adult's, and a microphone's band fills whatever rate it runs at (docs/Protocol.md).
Each check warns once per session; neither changes what is transcribed or billed.
"""

from __future__ import annotations

import itertools

import numpy as np

#: Rates a sound card or browser runs at.
STANDARD_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: Arrival within this fraction of a standard rate counts as that rate.
RATE_TOLERANCE = 0.04
#: Wall-clock seconds of arrival looked at (after the first, which may be a burst).
PACE_SECONDS = 5
#: Each second's pace within this share of the whole span's: the audio streams live.
STEADY_SPREAD = 0.3
#: A live source sends at least this often (its marks, one a second, are this close).
MAX_STEP_SECONDS = 1.5
#: The pace is watched for this long after the first audio, then no more.
PACE_WATCH_SECONDS = 60.0
#: Float32 values looked at before deciding (a quarter second at 16 kHz).
FLOAT_SAMPLES = 4000
#: Of those (zeros aside), this share in 1e-6 ≤ |v| ≤ 1 says the bytes are float32.
FLOAT_SHARE = 0.95
#: Bytes looked at for the float check, at most (then it gives up).
FLOAT_BYTES_MAX = 256 * 1024


def float_share(data: bytes) -> tuple[float, int]:
    """The share of ``data`` read as little-endian float32 (zeros aside) that is audio
    — finite, 1e-6 ≤ |v| ≤ 1 — and how many values counted."""
    values = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")
    nonzero = values[values != 0]
    if not len(nonzero):
        return 0.0, 0
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.abs(nonzero.astype(np.float64))
    audio = np.count_nonzero((size >= 1e-6) & (size <= 1.0))
    return audio / len(nonzero), len(nonzero)


def nearest_standard_rate(samples_per_second: float) -> int | None:
    """The standard rate within :data:`RATE_TOLERANCE` of ``samples_per_second``."""
    for rate in STANDARD_RATES:
        if abs(samples_per_second - rate) <= RATE_TOLERANCE * rate:
            return rate
    return None


def paced_rate(marks: list[tuple[float, int]], sample_bytes: int) -> int | None:
    """The standard rate the audio arrived at between the first and the last of
    ``marks`` (time, bytes so far), if every step between them came at a similar pace
    (within :data:`STEADY_SPREAD` of the whole: a live source, not bursts)."""
    (first_at, first_bytes), (last_at, last_bytes) = marks[0], marks[-1]
    if last_at <= first_at:
        return None
    pace = (last_bytes - first_bytes) / (last_at - first_at)
    if pace <= 0:
        return None
    for (at, size), (next_at, next_size) in itertools.pairwise(marks):
        step = next_at - at
        if not 0 < step <= MAX_STEP_SECONDS:  # a second without audio: not live
            return None
        if abs((next_size - size) / step - pace) > STEADY_SPREAD * pace:
            return None
    return nearest_standard_rate(pace / sample_bytes)


class AudioCheck:
    """Fed each audio frame with the time it arrived; :meth:`feed` returns a warning's
    message the first time the audio contradicts the declared format, else None."""

    __slots__ = (
        "_carry",
        "_declared",
        "_float_audio",
        "_float_bytes",
        "_float_counted",
        "_float_done",
        "_marks",
        "_pace_done",
        "_sample_bytes",
        "_second",
        "_start",
        "_total",
        "done",
    )

    def __init__(self, sample_rate: int, sample_bytes: int = 2) -> None:
        self._declared = sample_rate
        self._sample_bytes = sample_bytes
        self._carry = b""
        self._float_audio = 0
        self._float_counted = 0
        self._float_bytes = 0
        self._float_done = False
        self._start: float | None = None
        self._second = 0
        self._total = 0
        self._marks: list[tuple[float, int]] = []
        self._pace_done = False
        #: Both checks are over (one warned, or neither can any more).
        self.done = False

    def feed(self, data: bytes, now: float) -> str | None:
        message = None if self._float_done else self._check_float(data)
        if message is None and not self._pace_done:
            message = self._check_pace(len(data), now)
        if message is not None:
            self._float_done = self._pace_done = True
        self.done = self._float_done and self._pace_done
        return message

    def _check_float(self, data: bytes) -> str | None:
        whole = self._carry + data
        cut = len(whole) // 4 * 4
        self._carry = whole[cut:]
        share, counted = float_share(whole[:cut])
        self._float_audio += round(share * counted)
        self._float_counted += counted
        self._float_bytes += len(data)
        if self._float_counted < FLOAT_SAMPLES:
            if self._float_bytes >= FLOAT_BYTES_MAX:
                self._float_done = True  # near silence for this long: no verdict
            return None
        self._float_done = True
        if self._float_audio >= FLOAT_SHARE * self._float_counted:
            return (
                "the audio looks like 32-bit float samples: send 16-bit signed integers "
                "(pcm_s16le), e.g. Math.round(x * 32767) for each sample"
            )
        return None

    def _check_pace(self, size: int, now: float) -> str | None:
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        if elapsed >= PACE_WATCH_SECONDS:
            self._pace_done = True
            return None
        message = None
        second = int(elapsed)
        if second != self._second and second >= 1:  # the first second may hold a burst
            self._second = second
            self._marks.append((now, self._total))
            del self._marks[: -PACE_SECONDS - 1]
            if len(self._marks) > PACE_SECONDS:
                rate = paced_rate(self._marks, self._sample_bytes)
                if rate is not None and rate != self._declared:
                    message = (
                        f"audio arrives at about {rate} samples a second, but the stream "
                        f"declared sample_rate={self._declared}: resample to "
                        f"{self._declared} Hz or declare sample_rate={rate}"
                    )
        self._total += size
        return message
