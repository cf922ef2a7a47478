"""Budget alert webhooks: Slack-compatible POSTs, retried with backoff, never blocking audio."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gateway.observability.logging import get_logger

log = get_logger("gateway.webhooks")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
QUEUE_MAX = 10_000


def webhook_url_problem(url: str, *, allow_loopback_http: bool) -> str | None:
    """Why ``url`` may not be used as a webhook, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if not parts.hostname:
        return "not a URL"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and allow_loopback_http:
        host = parts.hostname
        if host == "localhost":
            return None
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return "http is allowed only to loopback addresses in dev"
    return "must be an https:// URL"


class WebhookSender:
    def __init__(self, *, delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_MAX)
        self._delays = delays
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._worker = asyncio.create_task(self._run())

    def send(self, url: str, payload: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((url, payload))
        except asyncio.QueueFull:
            self.failed += 1
            log.error("webhook.queue_full")

    async def _run(self) -> None:
        while True:
            url, payload = await self._queue.get()
            task = asyncio.create_task(self._deliver(url, payload))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        assert self._session is not None
        body = json.dumps(payload)
        for attempt, delay in enumerate((0.0, *self._delays)):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self._session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0
            log.warning("webhook.retry", attempt=attempt + 1, status=status)
        self.failed += 1
        log.error("webhook.failed", attempts=len(self._delays) + 1)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for task in list(self._in_flight):
            task.cancel()
        if self._session is not None:
            await self._session.close()
