"""The local model's ``busy``: what the interims ask before they take a worker."""

from __future__ import annotations

import asyncio
import threading

from gateway.stream.wav import wav_bytes
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult
from tests.support.audio import silence


async def test_a_decode_whose_caller_gave_up_keeps_the_worker_busy() -> None:
    local = LocalTranscriber(model="tiny.en", device="cpu", compute_type="int8", workers=1)
    started, finish = threading.Event(), threading.Event()

    def blocking(request: TranscriptionRequest) -> TranscriptionResult:
        started.set()
        finish.wait()
        return TranscriptionResult(text="", billed_seconds=request.duration)

    local._decode = blocking  # type: ignore[method-assign]
    local.loaded.set()
    assert not local.busy
    request = TranscriptionRequest(
        wav=wav_bytes(silence(0.5), 16000), model="tiny.en", duration=0.5
    )
    decoding = asyncio.create_task(local.transcribe(request))
    await asyncio.to_thread(started.wait)
    decoding.cancel()  # an interim given up: its window closed
    await asyncio.gather(decoding, return_exceptions=True)
    assert local.pending == 0
    assert local.busy, "the pool's thread still decodes: a final would wait behind it"
    finish.set()
    assert await asyncio.to_thread(local.wait_idle, 30)
    assert not local.busy
    await local.close()
