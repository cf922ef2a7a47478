"""Connections that never finish their headers, and requests aiohttp itself refuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from gateway.observability.logging import configure_logging
from tests.conftest import GatewayFactory
from tests.support.helpers import GatewayServer, eventually, t, token

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


async def _trickle(server: GatewayServer, head: bytes, stop: asyncio.Event) -> bytes:
    """Send ``head`` then a byte every 0.2 s until ``stop``; what the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head)

    async def drip() -> None:
        while not stop.is_set():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)

    dripping = asyncio.create_task(drip())
    answer = b""
    try:
        async with asyncio.timeout(t(15)):
            while chunk := await reader.read(65536):  # until the server closes
                answer += chunk
                stop.set()  # the answer has begun: no drip left unread at the close
    except ConnectionResetError:
        pass  # closed with a last drip unread (a reset): what came before is the answer
    finally:
        stop.set()
        dripping.cancel()
        writer.close()
    return answer


@pytest.mark.parametrize("route", ["/api/v1/tokens", "/v1/audio/transcriptions"])
async def test_a_slow_body_is_cut_with_408(make_gateway: GatewayFactory, route: str) -> None:
    server = await make_gateway(HTTP_BODY_TIMEOUT_SECONDS=0.5)
    jwt = token(role="teacher")
    kind = "application/json" if route.endswith("tokens") else "multipart/form-data; boundary=b"
    head = (
        f"POST {route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\n"
        f"Content-Type: {kind}\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    answers = await asyncio.gather(*(_trickle(server, head, asyncio.Event()) for _ in range(20)))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"Connection: close" in answer or b"connection: close" in answer.lower()
        assert b"REQUEST_TIMEOUT" in answer or b"request body did not arrive" in answer


@pytest.fixture
def info_logs() -> Iterator[None]:
    """The suite logs at warning; this test reads info lines."""
    configure_logging("debug", "json")
    yield
    configure_logging("warning", "json")


@pytest.mark.usefixtures("info_logs")
async def test_a_client_reset_mid_upload_is_one_info_line(gateway: GatewayServer) -> None:
    jwt = token(role="teacher")
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ).encode()
    with capture_logs() as logs:
        _reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(head + b"\x00" * 5000)
        await writer.drain()
        # the server has the bytes (and is reading the body) before the reset
        await eventually(lambda: any(e["event"] == "http.reading_body" for e in logs))
        sock = writer.get_extra_info("socket")
        import socket
        import struct

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, mid-body
        await eventually(lambda: any(e["event"] == "http.client_reset" for e in logs))
    assert not any("exc_info" in e or e.get("log_level") == "error" for e in logs), logs


async def test_every_answer_says_nosniff(gateway: GatewayServer) -> None:
    for path in ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/no-such-route"):
        answer = await _raw(
            gateway, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert b"x-content-type-options: nosniff" in answer.lower(), path
