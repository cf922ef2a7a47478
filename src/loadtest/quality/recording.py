"""A lesson as one recording over a steady noise floor, with its script and speech intervals."""

from __future__ import annotations

import json
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loadtest.quality.lessons import NOISE_LEVELS, Utterance
from loadtest.quality.speech import SAMPLE_RATE, speak

#: Below this amplitude a synthesized sample is silence (trimming espeak-ng's own padding).
EDGE_THRESHOLD = 1e-3


@dataclass(frozen=True, slots=True)
class Spoken:
    text: str
    start: float
    end: float


@dataclass
class Recording:
    """16 kHz mono PCM with what was said, and when (unknown for a user's own audio)."""

    pcm: bytes
    script: str
    sentences: list[Spoken] = field(default_factory=list)
    #: Pauses of 10 s or more between sentences: (start, end) seconds.
    long_pauses: list[tuple[float, float]] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    @property
    def speech_seconds(self) -> float | None:
        if not self.sentences:
            return None
        return sum(s.end - s.start for s in self.sentences)

    def save(self, wav_path: Path) -> None:
        """The WAV, with the script (``.txt``) and the speech intervals (``.json``) beside it."""
        with wave.open(str(wav_path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(self.pcm)
        wav_path.with_suffix(".txt").write_text(self.script + "\n")
        wav_path.with_suffix(".json").write_text(
            json.dumps(
                {
                    "seconds": round(self.seconds, 3),
                    "sentences": [asdict(s) for s in self.sentences],
                    "long_pauses": self.long_pauses,
                },
                indent=2,
            )
            + "\n"
        )


def _trimmed(samples: np.ndarray) -> tuple[int, int]:
    voiced = np.flatnonzero(np.abs(samples) > EDGE_THRESHOLD)
    if voiced.size == 0:
        return 0, 0
    return int(voiced[0]), int(voiced[-1]) + 1


def noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    """Steady white noise with an RMS of ``dbfs``."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(round(seconds * SAMPLE_RATE)).astype(np.float32)
    return samples * np.float32(10 ** (dbfs / 20))


def build(utterances: list[Utterance], noise_level: str = "none") -> Recording:
    """Speak every utterance, join them with their pauses, add the noise floor."""
    if noise_level not in NOISE_LEVELS:
        raise ValueError(f"unknown noise level {noise_level!r}: {', '.join(NOISE_LEVELS)}")
    parts: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, dtype=np.float32)]
    position = len(parts[0])
    sentences: list[Spoken] = []
    long_pauses: list[tuple[float, float]] = []
    for utterance in utterances:
        samples = speak(
            utterance.text,
            voice=utterance.voice,
            speed=utterance.speed,
            level_db=utterance.level_db,
        )
        first, last = _trimmed(samples)
        samples = samples[first:last]
        sentences.append(
            Spoken(
                utterance.text,
                round(position / SAMPLE_RATE, 3),
                round((position + len(samples)) / SAMPLE_RATE, 3),
            )
        )
        gap = np.zeros(round(utterance.pause_after * SAMPLE_RATE), dtype=np.float32)
        if utterance.pause_after >= 10.0:
            end = position + len(samples)
            long_pauses.append(
                (round(end / SAMPLE_RATE, 3), round((end + len(gap)) / SAMPLE_RATE, 3))
            )
        parts += [samples, gap]
        position += len(samples) + len(gap)
    mixed = np.concatenate(parts)
    level = NOISE_LEVELS[noise_level]
    if level is not None:
        mixed = mixed + noise(len(mixed) / SAMPLE_RATE, level)
    pcm = (np.clip(mixed, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    script = " ".join(u.text for u in utterances)
    return Recording(pcm=pcm, script=script, sentences=sentences, long_pauses=long_pauses)


def from_files(wav_path: Path, reference: Path) -> Recording:
    """A user's own recording (16-bit mono WAV; resampled to 16 kHz if needed)."""
    with wave.open(str(wav_path)) as source:
        if source.getnchannels() != 1 or source.getsampwidth() != 2:
            raise ValueError(f"{wav_path}: need a 16-bit mono WAV")
        rate = source.getframerate()
        pcm = source.readframes(source.getnframes())
    if rate != SAMPLE_RATE:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        positions = np.arange(0, len(samples), rate / SAMPLE_RATE)
        pcm = np.interp(positions, np.arange(len(samples)), samples).astype("<i2").tobytes()
    return Recording(pcm=pcm, script=reference.read_text().strip())
