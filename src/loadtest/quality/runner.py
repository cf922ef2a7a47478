"""Stream a recording through a gateway and score it against its script and two baselines:
the same model on the whole file (the ceiling for windowed transcription) and on naive
fixed 5 s chunks (what a proxy without pause-aware windows does)."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.keyterms import vocabulary_prompt
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.transcriber import TranscriptionRequest
from loadtest.quality import scoring
from loadtest.quality.recording import Recording
from loadtest.quality.scoring import Received

FRAME_SECONDS = 0.1
NAIVE_CHUNK_SECONDS = 5.0


@dataclass
class Streamed:
    received: list[Received]
    begin: dict[str, Any]
    last: dict[str, Any] | None
    close_code: int | None
    wall_seconds: float
    #: The ``Interim`` messages, when they were asked for.
    interims: list[Received] = field(default_factory=list)


class Refused(RuntimeError):
    """The gateway answered the handshake with an ``Error``."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"the gateway refused the stream: {error}")
        self.error = error


#: How long a stream waits for a gateway that says "retry" (starting, model loading).
RETRY_FOR_SECONDS = 120.0


async def stream(
    url: str,
    token: str,
    recording: Recording,
    speed: float,
    keyterms: Sequence[str] = (),
    *,
    interims: bool = False,
) -> Streamed:
    """:func:`stream_once`, again after ``retry_after`` while the gateway says it is not
    ready yet (``OVERLOADED``: starting, or its local model still loading)."""
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    while True:
        try:
            return await stream_once(url, token, recording, speed, keyterms, interims=interims)
        except Refused as exc:
            if not exc.error.get("retryable") or time.monotonic() > deadline:
                raise
            await asyncio.sleep(float(exc.error.get("retry_after") or 1.0))


async def stream_once(
    url: str,
    token: str,
    recording: Recording,
    speed: float,
    keyterms: Sequence[str] = (),
    *,
    interims: bool = False,
) -> Streamed:
    """Send ``recording`` in 100 ms frames at ``speed`` × real time while reading."""
    frame = 2 * round(FRAME_SECONDS * recording.sample_rate)
    query = [("sample_rate", str(recording.sample_rate))] + [("keyterm", k) for k in keyterms]
    if interims:
        query.append(("interim_results", "true"))
    received: list[Received] = []
    live: list[Received] = []
    last: dict[str, Any] | None = None
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url,
            params=query,
            headers={"Authorization": f"Bearer {token}"},
            max_msg_size=0,
        ) as ws,
    ):
        begin = json.loads((await ws.receive()).data)
        if begin.get("type") != "Begin":
            raise Refused(begin)
        started = time.monotonic()

        async def send() -> None:
            for i, offset in enumerate(range(0, len(recording.pcm), frame)):
                delay = started + i * FRAME_SECONDS / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send_bytes(recording.pcm[offset : offset + frame])
            await ws.send_str(json.dumps({"type": "CloseStream"}))

        sender = asyncio.create_task(send())
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(msg.data)
            last = message
            if message["type"] in ("Transcript", "Interim"):
                arrived = Received(message, time.monotonic() - started)
                (received if message["type"] == "Transcript" else live).append(arrived)
        sender.cancel()
        wall = time.monotonic() - started
        return Streamed(received, begin, last, ws.close_code, wall, live)


def _wav(pcm: bytes, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


class Baselines:
    """The same local model, called directly: on the whole file and on fixed chunks."""

    def __init__(self, model: str) -> None:
        self._transcriber = LocalTranscriber(
            model=model, device="auto", compute_type="auto", workers=1
        )
        self.model = model

    async def __aenter__(self) -> Baselines:
        await self._transcriber.load()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._transcriber.close()

    async def _text(self, pcm: bytes, sample_rate: int, prompt: str | None) -> str:
        request = TranscriptionRequest(
            wav=_wav(pcm, sample_rate),
            model=self.model,
            duration=len(pcm) / 2 / sample_rate,
            prompt=prompt,
        )
        return (await self._transcriber.transcribe(request)).text

    async def whole(self, recording: Recording, keyterms: Sequence[str] = ()) -> str:
        """The whole file at once (given the same vocabulary as the gateway, if any)."""
        prompt = vocabulary_prompt(keyterms) or None
        return await self._text(recording.pcm, recording.sample_rate, prompt)

    async def chunks(
        self,
        recording: Recording,
        seconds: float = NAIVE_CHUNK_SECONDS,
        keyterms: Sequence[str] = (),
    ) -> str:
        step = 2 * round(seconds * recording.sample_rate)
        prompt = vocabulary_prompt(keyterms) or None
        texts = [
            await self._text(recording.pcm[i : i + step], recording.sample_rate, prompt)
            for i in range(0, len(recording.pcm), step)
        ]
        return " ".join(t for t in texts if t)


def score(
    name: str,
    noise: str,
    recording: Recording,
    streamed: Streamed,
    *,
    speed: float,
    whole_text: str | None,
    chunk_text: str | None,
    keyterms: Sequence[str] = (),
) -> dict[str, Any]:
    """One row of the report."""
    received = streamed.received
    text = scoring.joined_text(received)
    billed = scoring.billed_seconds(received)
    speech = recording.speech_seconds
    statuses = [r.message["status"] for r in received]
    latencies = [r.message["latency_ms"] / 1000 for r in received if r.message["status"] == "ok"]
    return {
        "lesson": name,
        "noise": noise,
        "provider": streamed.begin.get("config", {}).get("provider"),
        "seconds": round(recording.seconds, 2),
        "speech_seconds": None if speech is None else round(speech, 2),
        "speech_share": None if speech is None else round(speech / recording.seconds, 3),
        "wer": round(scoring.wer(recording.script, text), 4),
        "wer_whole_file": None
        if whole_text is None
        else round(scoring.wer(recording.script, whole_text), 4),
        "wer_naive_chunks": None
        if chunk_text is None
        else round(scoring.wer(recording.script, chunk_text), 4),
        "billed_seconds": round(billed, 2),
        "billed_over_streamed": round(billed / recording.seconds, 3),
        "billed_over_speech": None if not speech else round(billed / speech, 3),
        "pause_texts": scoring.pause_texts(received, recording.long_pauses),
        "windows": {s: statuses.count(s) for s in ("ok", "silence", "dropped")},
        "latency_s": scoring.distribution(latencies),
        "sentence_delay_s": scoring.distribution(
            scoring.sentence_delays(received, recording.sentences, speed)
        ),
        **_live_words(recording, streamed, speed),
        "cuts_inside_sentences": len(scoring.cuts_inside_sentences(received, recording.sentences)),
        "late_sentences": len(
            scoring.late_sentences(
                received,
                recording.sentences,
                speed,
                float(streamed.begin.get("config", {}).get("window_seconds", 0.0)),
            )
        ),
        "speed": speed,
        "keyterms": len(keyterms),
        "close_code": streamed.close_code,
        "transcript": text,
        "whole_file_transcript": whole_text,
    }


def _live_words(recording: Recording, streamed: Streamed, speed: float) -> dict[str, Any]:
    """Whether interims came, how many, and how soon each sentence's first words showed."""
    shown = [*streamed.interims, *streamed.received]
    return {
        "interims": bool(streamed.begin.get("config", {}).get("interim_results")),
        "interim_messages": len(streamed.interims),
        "first_words_s": scoring.distribution(
            scoring.first_words_delays(shown, recording.sentences, speed)
        ),
    }


COLUMNS = (
    ("lesson", "lesson"),
    ("noise", "noise"),
    ("WER gateway", "wer"),
    ("WER whole file", "wer_whole_file"),
    ("WER naive 5 s", "wer_naive_chunks"),
    ("billed / streamed", "billed_over_streamed"),
    ("speech share", "speech_share"),
    ("billed / speech", "billed_over_speech"),
    ("text in long pause", "pause_texts"),
    ("latency p50 / p95 (s)", "latency_s"),
    ("sentence → words p50 / p95 (s)", "sentence_delay_s"),
    ("interims", "interims"),
    ("first words p50 / p95 (s)", "first_words_s"),
    ("cuts inside a sentence", "cuts_inside_sentences"),
    ("sentences past the latency target", "late_sentences"),
    ("vocabulary terms", "keyterms"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return str(len(value)) if value else "none"
    if isinstance(value, dict):
        return " / ".join("—" if v is None else f"{v:.2f}" for v in value.values())
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for title, _ in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(_cell(row[key]) for _, key in COLUMNS) + " |" for row in rows]
    return "\n".join([head, rule, *body]) + "\n"
