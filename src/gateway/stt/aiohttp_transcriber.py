"""A lean OpenAI-wire transcriber over aiohttp (``UPSTREAM_CLIENT=aiohttp``, the default).

The same request the official client sends — a multipart POST to
``{base}/audio/transcriptions`` with ``file``, ``model``, ``response_format``
and the optional ``language`` and ``prompt`` — at about half its CPU per
window (docs/Performance.md). What an answer means is decided in
:mod:`gateway.stt.openai_wire`, shared with :mod:`gateway.stt.openai_transcriber`;
transport failures are mapped here, in one place.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gateway.errors import ServerError, UpstreamConnectionError, UpstreamTimeout
from gateway.stt.openai_wire import error_for_status, read_answer, wants_segments
from gateway.stt.transcriber import TranscriptionRequest, TranscriptionResult

#: Connections kept open to the upstream (the official client's default pool size).
POOL_SIZE = 100


class AiohttpTranscriber:
    """Sends one WAV per call; one connection pool for the process."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float) -> None:
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": "stt-gateway",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE),
                timeout=self._timeout,
                headers=self._headers,
                json_serialize=json.dumps,
            )
        return self._session

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        verbose = wants_segments(request.model)
        form = aiohttp.FormData(quote_fields=False)
        form.add_field(
            "file", request.wav, filename=request.filename, content_type=request.content_type
        )
        form.add_field("model", request.model)
        form.add_field("response_format", "verbose_json" if verbose else "json")
        if request.language:
            form.add_field("language", request.language)
        if request.prompt:
            form.add_field("prompt", request.prompt)
        if request.quick:
            form.add_field("temperature", "0")
        try:
            async with self._client().post(self._url, data=form) as response:
                status, headers = response.status, response.headers
                body = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamConnectionError("upstream unreachable") from exc
        payload = _json(body)
        if not 200 <= status < 300:
            raise error_for_status(status, headers, payload)
        if payload is None:
            raise ServerError("malformed upstream answer: not JSON")
        return read_answer(payload, verbose=verbose)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
