"""Webhook destinations: no internal hosts outside dev (at save and at send), no redirects."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.auth.tokens import mint
from gateway.budget import egress
from gateway.budget.webhooks import WebhookSender, webhook_url_problem
from tests.conftest import GatewayFactory
from tests.support.helpers import SECRET, eventually, http_json, t

INTERNAL = [
    "https://169.254.169.254/latest/meta-data/",
    "https://127.0.0.1:6379/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://[::1]/",
    "https://[fe80::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://localhost/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://printer.local/",
    "http://hooks.slack.com/x",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused_outside_dev(url: str) -> None:
    assert webhook_url_problem(url, dev=False) is not None


def test_public_https_is_accepted_and_dev_allows_loopback_http() -> None:
    assert webhook_url_problem("https://hooks.slack.com/services/T/B/X", dev=False) is None
    assert webhook_url_problem("https://93.184.216.34/hook", dev=False) is None
    assert webhook_url_problem("http://127.0.0.1:9/hook", dev=True) is None
    assert webhook_url_problem("http://10.0.0.1/hook", dev=True) is not None


class MapResolver(AbstractResolver):
    """Answers every name with one fixed address (a rebinding DNS server, in effect)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_inside_is_refused_at_save_time() -> None:
    assert "private" in str(
        await egress.resolve_problem("hooks.example", 443, MapResolver("10.1.2.3"))
    )
    assert await egress.resolve_problem("hooks.example", 443, MapResolver("8.8.8.8")) is None


class Hook:
    def __init__(self) -> None:
        self.hits = 0
        self.redirect_to: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.redirect_to:
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        return web.Response(status=204)


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[list[Hook], list[str]]]:
    made: list[Hook] = []
    urls: list[str] = []
    runners = []
    for _ in range(2):
        hook = Hook()
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        made.append(hook)
        urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        runners.append(runner)
    yield made, urls
    for runner in runners:
        await runner.cleanup()


async def test_dns_rebinding_is_refused_at_send_time(
    hooks: tuple[list[Hook], list[str]],
) -> None:
    (hook, _), (url, _) = hooks
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    connector = aiohttp.TCPConnector(resolver=egress.GuardedResolver(MapResolver("127.0.0.1")))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.post(f"http://rebound.example:{port}/hook", data=b"{}")
    assert isinstance(caught.value.os_error, egress.ForbiddenDestination)
    assert hook.hits == 0


async def test_the_sender_refuses_internal_literals_and_never_follows_redirects(
    hooks: tuple[list[Hook], list[str]],
) -> None:
    (first, second), (first_url, second_url) = hooks
    guarded = WebhookSender(guarded=True, delays=(0.01,))
    guarded.start()
    guarded.send(first_url.replace("http:", "https:"), {"text": "x"})
    await eventually(lambda: guarded.failed == 1)
    await guarded.close()
    assert first.hits == 0

    first.redirect_to = second_url
    sender = WebhookSender(guarded=False, delays=(0.01, 0.01))
    sender.start()
    sender.send(first_url, {"text": "x"})
    await eventually(lambda: sender.failed == 1)
    await asyncio.sleep(t(0.2))
    await sender.close()
    assert (first.hits, second.hits) == (1, 0)


async def test_the_api_refuses_internal_webhooks_outside_dev(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(APP_ENV="staging", AUDIT_HMAC_KEY="a" * 32)
    admin = mint(SECRET, school_id="s-1", role="school_admin")
    url = f"{server.http}/api/v1/schools/s-1/budget/alerts"
    for bad in INTERNAL:
        status, body = await http_json("PUT", url, admin, {"webhook_url": bad})
        assert status == 400, (bad, body)
        assert body["error"]["details"][0]["field"] == "webhook_url"
    status, body = await http_json("GET", url, admin)
    assert status == 200 and body["webhook_configured"] is False
