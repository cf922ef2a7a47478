"""Transcriber over the official ``openai`` async client (``UPSTREAM_CLIENT=openai-sdk``).

All vendor exceptions are translated into :mod:`gateway.errors` in one place,
:func:`map_openai_errors`; what an answer means is decided in
:mod:`gateway.stt.openai_wire`, shared with the lean client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai

from gateway.errors import ServerError, UpstreamConnectionError, UpstreamError, UpstreamTimeout
from gateway.stt.openai_wire import error_for_status, read_answer, wants_segments
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult


@contextmanager
def map_openai_errors() -> Iterator[None]:
    """Translate openai / transport exceptions into gateway ``UpstreamError`` leaves."""
    try:
        yield
    except UpstreamError:
        raise
    except openai.APITimeoutError as exc:
        raise UpstreamTimeout("upstream timed out") from exc
    except openai.APIConnectionError as exc:
        raise UpstreamConnectionError("upstream unreachable") from exc
    except openai.APIStatusError as exc:
        raise error_for_status(exc.status_code, exc.response.headers, exc.body) from exc
    except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, KeyError) as exc:
        raise ServerError("malformed upstream answer") from exc
    except openai.OpenAIError as exc:
        raise ServerError(f"upstream error: {type(exc).__name__}") from exc


class OpenAITranscriber:
    """Sends one WAV per call to ``/audio/transcriptions`` through the official client.

    Whisper models are asked for ``verbose_json``: its segments say which parts
    Whisper itself did not believe were speech (see :mod:`gateway.stt.suppression`).
    """

    def __init__(self, *, api_key: str, base_url: str, timeout: float) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        kwargs: dict[str, Any] = {}
        if request.language:
            kwargs["language"] = request.language
        if request.prompt:
            kwargs["prompt"] = request.prompt
        verbose = wants_segments(request.model)
        with map_openai_errors():
            response = await self._client.audio.transcriptions.create(
                file=(request.filename, request.wav, request.content_type),
                model=request.model,
                response_format="verbose_json" if verbose else "json",
                **kwargs,
            )
            dump = getattr(response, "model_dump", None)
            return read_answer(dump() if callable(dump) else response, verbose=verbose)

    async def close(self) -> None:
        await self._client.close()
