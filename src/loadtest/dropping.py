"""A group whose connection the network takes away (``stt-loadtest classroom --drops N``).

Each such group streams through a TCP proxy of its own on loopback
(:class:`~loadtest.proxy.CuttingProxy`), which the harness cuts before ``drops``
random frames — a reset, no close frame — while the gateway's client library
resumes the session each time and sends the audio again from where the gateway
has it. What the group received is then verified like any other: one session,
every window once, tiling the audio sent.
"""

from __future__ import annotations

import random
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from loadtest.proxy import CuttingProxy


def through(proxy: CuttingProxy, url: str) -> str:
    """``url`` with its host and port those of ``proxy`` (ws:// only: the proxy is plain
    TCP, and a certificate would not name 127.0.0.1)."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError("--drops needs a ws:// URL (its proxy runs on loopback)")
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def cut_points(frame_count: int, drops: int, rng: random.Random) -> set[int]:
    """The frames before which the connection is cut: ``drops`` distinct ones, none at the
    very start."""
    return set(rng.sample(range(1, frame_count), min(drops, max(0, frame_count - 1))))


class Cutter:
    """The way a group's connection takes: straight to ``url`` (no drops), or through a
    proxy cut before each of ``drops`` random frames of ``frame_count``."""

    def __init__(self, url: str, frame_count: int, drops: int, rng: random.Random) -> None:
        self.url = url
        self._cuts = cut_points(frame_count, drops, rng) if drops else set()
        self._proxy: CuttingProxy | None = None

    async def __aenter__(self) -> Cutter:
        if self._cuts:
            parts = urlsplit(self.url)
            target = (parts.hostname or "127.0.0.1", parts.port or 80)
            self._proxy = await CuttingProxy(target).start()
            self.url = through(self._proxy, self.url)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proxy is not None:
            await self._proxy.close()

    def before(self, frame: int) -> None:
        """Frame ``frame`` is about to be sent: cut the connection if it is a cut point."""
        if self._proxy is not None and frame in self._cuts:
            self._proxy.cut()
