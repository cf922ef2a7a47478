"""Hostile stream clients: frames far over the limit, ping floods and aborted connections."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.helpers import GatewayServer, connect, eventually, open_stream, t, token


async def test_a_frame_far_over_the_limit_gets_error_before_1009(gateway: GatewayServer) -> None:
    stream = await open_stream(gateway, token())
    # A binary frame declaring 1 GiB: refused from its header, before any payload is buffered.
    header = b"\x82\xff" + (1 << 30).to_bytes(8, "big") + b"\x01\x02\x03\x04"
    transport = stream.ws._response.connection.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.write(header + b"\0" * 4096)
    messages = await stream.collect()
    await stream.close()
    assert messages[-1]["type"] == "Error" and messages[-1]["code"] == "BAD_AUDIO"
    assert stream.close_code == 1009


async def test_ping_flood_then_tcp_abort_still_ends_the_session(gateway: GatewayServer) -> None:
    audit = gateway.state.audit.path
    stream = await open_stream(gateway, token())
    for _ in range(2000):
        await stream.ws.ping(b"x" * 100)
    transport = stream.ws._response.connection.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.abort()
    await stream.session.close()
    await eventually(lambda: len(gateway.state.registry) == 0, timeout=15)
    await eventually(lambda: audit.read_text().count('"session.ended"') == 1, timeout=15)
    assert audit.read_text().count('"session.started"') == 1
    await asyncio.sleep(t(0.1))


async def test_a_session_that_fails_still_records_session_ended(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: an exception out of the session (or the handler being cancelled) skipped the
    session.ended record, leaving a session.started without its end."""
    from gateway.web.listen.session import StreamSession

    async def broken(self: StreamSession) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(StreamSession, "_run", broken)
    audit = gateway.state.audit.path
    stream = await connect(gateway, token())
    await stream.collect()
    await stream.close()
    assert stream.close_code == 1011
    await eventually(lambda: '"session.ended"' in audit.read_text(), timeout=5)
    ended = [line for line in audit.read_text().splitlines() if '"session.ended"' in line]
    assert len(ended) == 1 and '"reason":"error"' in ended[0]
    assert len(gateway.state.registry) == 0
