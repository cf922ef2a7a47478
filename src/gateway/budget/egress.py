"""Where the gateway may send a webhook: never to its own network's insides.

A school admin chooses the webhook URL, so outside ``APP_ENV=dev`` the gateway
refuses hosts that are, or resolve to, loopback, private, link-local (cloud
metadata at 169.254.169.254), shared, reserved, multicast or unspecified
addresses, and well-known metadata names. The check runs when the URL is saved
and again when it is used: :class:`GuardedResolver` filters every DNS answer
the webhook client connects to, so a name that later re-resolves to an
internal address (DNS rebinding) is refused at send time. Redirects are never
followed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "localhost"}
)


class ForbiddenDestination(OSError):
    """The webhook host is, or resolves to, an address the gateway must not reach."""


def address_problem(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public destination, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local (metadata) address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


def name_problem(host: str) -> str | None:
    """Why ``host`` (a name or an IP literal) may not be used before any lookup, or None."""
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES or name.endswith((".localhost", ".internal", ".local")):
        return f"{name} is an internal host name"
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None
    problem = address_problem(name)
    return f"{name} is {problem}" if problem else None


async def resolve_problem(host: str, port: int, resolver: AbstractResolver) -> str | None:
    """Why ``host`` may not be used once resolved (every answer must be public), or None."""
    problem = name_problem(host)
    if problem:
        return problem
    try:
        answers = await resolver.resolve(host, port, socket.AF_UNSPEC)
    except OSError:
        return f"{host} does not resolve"
    for answer in answers:
        problem = address_problem(answer["host"])
        if problem:
            return f"{host} resolves to {problem}"
    return None


class GuardedResolver(AbstractResolver):
    """A resolver that refuses names answering with any non-public address."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        problem = name_problem(host)
        answers = [] if problem else await self._inner.resolve(host, port, family)
        for answer in answers:
            problem = problem or address_problem(answer["host"])
        if problem:
            raise ForbiddenDestination(f"webhook host refused: {problem}")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def resolver_kwargs(guarded: bool) -> dict[str, Any]:
    """``TCPConnector`` arguments: the guarded resolver unless internal hosts are allowed."""
    return {"resolver": GuardedResolver()} if guarded else {}
