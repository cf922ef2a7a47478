"""Connections that never finish their headers, and requests aiohttp itself refuses."""

from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs

from tests.conftest import GatewayFactory
from tests.helpers import GatewayServer, t

SECRET_BYTES = "eyJzZWNyZXQiOiJ0b2tlbiJ9.c2VjcmV0LXBheWxvYWQtYnl0ZXM.c2lnbmF0dXJl"


async def test_half_sent_headers_are_closed(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(HTTP_KEEPALIVE_SECONDS=0.5)
    connections = []
    for _ in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        connections.append((reader, writer))
    async with asyncio.timeout(t(10)):
        for reader, _ in connections:
            assert await reader.read() == b""  # closed by the server
    for _, writer in connections:
        writer.close()


async def test_idle_keep_alive_connections_are_closed(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(HTTP_KEEPALIVE_SECONDS=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(t(10)):
        answer = await reader.read()  # the response, then the server closes the idle connection
    assert answer.startswith(b"HTTP/1.1 200") and b'"ok"' in answer
    writer.close()


async def _raw(server: GatewayServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(t(10)):
        answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        (
            f"GET /api/v1/budget/usage HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {SECRET_BYTES}{'A' * 9000}\r\n\r\n"
        ).encode(),
        (
            "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {SECRET_BYTES}\0x\r\n\r\n"
        ).encode(),
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    ],
    ids=["header-over-8k", "nul-in-header", "too-many-headers"],
)
async def test_parser_refusals_answer_json_and_log_no_header_bytes(
    gateway: GatewayServer, request_bytes: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs:
        answer = await _raw(gateway, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"431"), answer[:200]
    assert b"application/json" in head
    assert json.loads(body)["error"]["code"] in ("BAD_REQUEST", "REQUEST_HEADER_FIELDS_TOO_LARGE")
    assert SECRET_BYTES.encode() not in answer and b"AAAA" not in answer
    printed = capfd.readouterr()
    assert SECRET_BYTES not in printed.err + printed.out
    assert "Traceback" not in printed.err + printed.out
    assert any(e["event"] == "http.refused_by_parser" for e in logs), logs
    assert SECRET_BYTES not in repr(logs)
