"""Budget alert webhooks: Slack-compatible POSTs, retried with backoff, never blocking audio."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.resolver import DefaultResolver

from gateway.budget import egress
from gateway.observability.logging import get_logger

log = get_logger("gateway.webhooks")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
QUEUE_MAX = 10_000


def webhook_url_problem(url: str, *, dev: bool) -> str | None:
    """Why ``url`` may not be used as a webhook (before any lookup), or None.

    https only; in dev, http to loopback too. Outside dev, internal names and
    non-public IP literals are refused (:mod:`gateway.budget.egress`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "not a URL"
    host = parts.hostname
    if not host:
        return "not a URL"
    if dev:
        if parts.scheme == "https" or (parts.scheme == "http" and _loopback(host)):
            return None
        if parts.scheme == "http":
            return "http is allowed only to loopback addresses in dev"
        return "must be an https:// URL"
    if parts.scheme != "https":
        return "must be an https:// URL"
    return egress.name_problem(host)


async def webhook_destination_problem(url: str, *, dev: bool) -> str | None:
    """:func:`webhook_url_problem`, then (outside dev) every address the host resolves to."""
    problem = webhook_url_problem(url, dev=dev)
    if problem or dev:
        return problem
    parts = urlsplit(url)
    resolver = DefaultResolver()
    try:
        return await egress.resolve_problem(str(parts.hostname), parts.port or 443, resolver)
    finally:
        await resolver.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSender:
    def __init__(self, *, guarded: bool, delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        """``guarded``: refuse internal destinations at send time (everywhere but dev)."""
        self._guarded = guarded
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_MAX)
        self._delays = delays
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(**egress.resolver_kwargs(self._guarded)),
        )
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
        host = urlsplit(url).hostname or ""
        refused = egress.name_problem(host) if self._guarded else None
        if refused:
            self._refuse(refused)
            return
        body = json.dumps(payload)
        for attempt, delay in enumerate((0.0, *self._delays)):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self._session.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    allow_redirects=False,
                ) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    if response.status < 400:
                        self._refuse(f"answered a redirect ({response.status}); not followed")
                        return
                    status = response.status
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, egress.ForbiddenDestination):
                    self._refuse(str(exc.os_error))
                    return
                status = 0
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0
            log.warning("webhook.retry", attempt=attempt + 1, status=status)
        self.failed += 1
        log.error("webhook.failed", attempts=len(self._delays) + 1)

    def _refuse(self, problem: str) -> None:
        self.failed += 1
        log.error("webhook.refused", problem=problem)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for task in list(self._in_flight):
            task.cancel()
        if self._session is not None:
            await self._session.close()
