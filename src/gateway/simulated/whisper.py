"""A simulated OpenAI-compatible ``/v1/audio/transcriptions`` server.

Its text is derived from the audio it receives: the dominant tone's frequency
(to the nearest 10 Hz) and the duration, e.g. ``"[simulated] tone 440 Hz
5.00 s"``, so a test can tell which group's audio a transcript came from.
Behaviour is configurable at start and at run time (``POST /_control``):
latency and jitter, random 429 (with ``Retry-After``), ``insufficient_quota``,
5xx and malformed answers, or a fixed ``mode`` that answers every request the
same way.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import wave
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from aiohttp import web

MODES = (
    "normal", "429", "quota", "500", "garbage", "notext", "reject", "unauthorized", "hang",
)  # fmt: skip


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_quota: float = 0.0
    rate_5xx: float = 0.0
    rate_garbage: float = 0.0
    retry_after: float = 1.0
    #: Also send OpenAI's ``retry-after-ms`` header (with 429 and 500) when set.
    retry_after_ms: float | None = None
    #: Add the segments a real Whisper invents in pauses (non-speech, and a loop) to
    #: ``verbose_json`` answers.
    hallucinate: bool = False
    mode: str = "normal"
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown behaviour field {key!r}")
            if key == "mode" and value not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
            setattr(self, key, value)


@dataclass
class Received:
    """A request the simulated server answered successfully."""

    model: str
    duration: float
    language: str | None
    prompt: str | None
    text: str
    response_format: str = "json"


@dataclass
class FakeWhisper:
    behaviour: Behaviour = field(default_factory=Behaviour)
    received: list[Received] = field(default_factory=list)
    answered: int = 0
    #: (monotonic arrival time, answer kind) of every request, faults included.
    log: list[tuple[float, str]] = field(default_factory=list)
    #: Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.behaviour.seed)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_post("/audio/transcriptions", self.transcriptions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/_control", self.control)
        app.router.add_get("/_control", self.control)
        return app

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "owned_by": "simulated"}
                    for m in ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
                ],
            }
        )

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.behaviour.update(await request.json())
            except ValueError as exc:
                return web.json_response({"error": {"message": str(exc)}}, status=400)
        return web.json_response({**asdict(self.behaviour), "received": len(self.received)})

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        model = str(form.get("model", ""))
        if upload is None or not hasattr(upload, "file") or not model:
            return _error(400, "invalid_request_error", "file and model are required")
        data = upload.file.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(form, data, model)
        finally:
            self.in_flight -= 1

    async def _answer(self, form: Any, data: bytes, model: str) -> web.Response:
        b = self.behaviour
        delay = max(0.0, b.latency_ms + self._rng.uniform(-b.jitter_ms, b.jitter_ms)) / 1000
        if delay:
            await asyncio.sleep(delay)
        fault = self._pick_fault()
        self.log.append((time.monotonic(), fault))
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault != "normal":
            return self._fault(fault)
        try:
            text, duration = describe(data)
        except (wave.Error, EOFError, ValueError):
            return _error(400, "invalid_request_error", "Could not decode the audio file.")
        language = form.get("language")
        prompt = form.get("prompt")
        response_format = str(form.get("response_format") or "json")
        self.received.append(
            Received(
                model,
                duration,
                str(language) if language else None,
                str(prompt) if prompt else None,
                text,
                response_format,
            )
        )
        self.answered += 1
        return _transcription(text, duration, response_format, hallucinate=b.hallucinate)

    def _fault(self, fault: str) -> web.Response:
        """The answer of one fault (every ``MODES`` entry but ``normal`` and ``hang``)."""
        b = self.behaviour
        ms = {} if b.retry_after_ms is None else {"retry-after-ms": f"{b.retry_after_ms:g}"}
        waits = {"Retry-After": f"{b.retry_after:g}", **ms}
        if fault == "garbage":
            return web.Response(status=200, text="<html>not json", content_type="application/json")
        if fault == "notext":
            return web.json_response({"usage": {"type": "duration", "seconds": 1}})
        status, kind, message, code, headers = {
            "429": (429, "requests", "Rate limit reached", "rate_limit_exceeded", waits),
            "quota": (429, "insufficient_quota", "You exceeded your quota", None, None),
            "500": (500, "server_error", "The server had an error", None, ms or None),
            "reject": (400, "invalid_request_error", "Rejected", None, None),
            "unauthorized": (
                401,
                "invalid_request_error",
                "Incorrect API key provided",
                None,
                None,
            ),
        }[fault]
        return _error(status, kind, f"{message} (simulated).", code=code, headers=headers)

    def _pick_fault(self) -> str:
        b = self.behaviour
        if b.mode != "normal":
            return b.mode
        draw = self._rng.random()
        for name, rate in (
            ("429", b.rate_429),
            ("quota", b.rate_quota),
            ("500", b.rate_5xx),
            ("garbage", b.rate_garbage),
        ):
            if draw < rate:
                return name
            draw -= rate
        return "normal"


#: What a real Whisper says in a pause, and how sure it is that nobody spoke.
HALLUCINATED = "Thanks for watching!"
LOOPED = "the the the the the the the the the the the the"


def _transcription(
    text: str, duration: float, response_format: str, *, hallucinate: bool
) -> web.Response:
    usage = {"type": "duration", "seconds": round(duration, 3)}
    if response_format != "verbose_json":
        return web.json_response({"text": text, "usage": usage})
    segments = verbose_segments(text, duration, hallucinate=hallucinate)
    return web.json_response(
        {
            "task": "transcribe",
            "language": "english",
            "duration": round(duration, 3),
            "text": " ".join(str(seg["text"]).strip() for seg in segments),
            "segments": segments,
            "usage": usage,
        }
    )


def verbose_segments(text: str, duration: float, *, hallucinate: bool) -> list[dict[str, Any]]:
    """``verbose_json`` segments for ``text``: one confident segment, and with ``hallucinate``
    the two kinds Whisper produces from pauses (flagged as a real Whisper flags them)."""

    def segment(
        start: float, end: float, said: str, no_speech: float, logprob: float, ratio: float
    ) -> dict[str, Any]:
        return {
            "id": 0, "seek": 0, "start": round(start, 3), "end": round(end, 3),
            "text": f" {said}", "tokens": [], "temperature": 0.0,
            "avg_logprob": logprob, "compression_ratio": ratio, "no_speech_prob": no_speech,
        }  # fmt: skip

    segments = [segment(0.0, duration, text, 0.01, -0.2, 1.3)] if text else []
    if hallucinate:
        segments.append(segment(duration, duration, HALLUCINATED, 0.92, -1.4, 0.9))
        segments.append(segment(duration, duration, LOOPED, 0.1, -0.3, 3.8))
    for i, seg in enumerate(segments):
        seg["id"] = i
    return segments


def describe(wav: bytes) -> tuple[str, float]:
    """The simulated transcript of a WAV file, and its duration in seconds."""
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
        if reader.getsampwidth() != 2:
            raise ValueError("16-bit PCM only")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    duration = len(samples) / rate
    if len(samples) == 0 or float(np.max(np.abs(samples))) < 100:
        return "", duration
    spectrum = np.abs(np.fft.rfft(samples))
    spectrum[0] = 0
    freq = float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
    return f"[simulated] tone {round(freq / 10) * 10} Hz {duration:.2f} s", duration


def _error(
    status: int,
    kind: str,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code or kind}}
    return web.json_response(body, status=status, headers=headers)


async def start(
    fake: FakeWhisper, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start ``fake`` on ``host:port``; return the runner and its ``/v1`` base URL."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{bound}/v1"
