"""A TCP proxy on loopback that drops connections the way a network does.

``cut()`` resets every connection through it at once: no WebSocket close
frame, no FIN — the peer's next read fails, as when Wi-Fi goes away. Clearing
``flowing`` stops moving bytes without closing anything (a sleeping laptop). New
connections go to ``target``, which may change (a client that resumes
through a load balancer may land on another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class CuttingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        #: Set to reset every new connection at once (the network is still down).
        self.refusing = False
        #: Cleared to stall every connection (bytes wait, nothing closes); set to go on.
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def cut(self) -> int:
        """Reset every connection now (both sides, RST); how many there were."""
        pairs = list(self._pairs)
        for pair in pairs:
            for writer in pair:
                _reset(writer)
        self._pairs.clear()
        return len(pairs)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            if pair in self._pairs:  # one side ended by itself: end the other
                self._pairs.discard(pair)
                for side in pair:
                    with contextlib.suppress(Exception):
                        side.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger 0, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
