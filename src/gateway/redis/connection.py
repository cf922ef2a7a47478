"""The ledger's Redis, in any of its three shapes: standalone, Cluster or Sentinel.

``REDIS_MODE`` chooses how ``REDIS_URL`` is read:

- ``standalone``: one server, ``redis://[:password@]host:port/db`` (or ``rediss://``);
- ``cluster``: any node of a Redis Cluster, ``redis://host:port``; the client
  learns the others and follows slot moves and failovers. Every key the gateway
  writes carries the hash tag ``{stt}``, so every script touches one slot;
- ``sentinel``: the sentinels, comma-separated, ``redis://[:password@]h1:26379,h2:26379/db``;
  the client asks them for the primary of ``REDIS_SENTINEL_MASTER`` and asks again
  after a failover.

The pool waits (bounded) for a free connection instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

RedisMode = Literal["standalone", "cluster", "sentinel"]

TIMEOUT_SECONDS = 2.0
_SENTINELS = "_stt_sentinels"
MAX_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """What a sentinel ``REDIS_URL`` says: the sentinels, the password and the database."""

    sentinels: tuple[tuple[str, int], ...]
    password: str | None
    db: int
    tls: bool


def parse_sentinel_url(url: str) -> SentinelAddress:
    """``redis://[:password@]host:port[,host:port…][/db]`` (pure; ValueError when malformed)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "rediss"):
        raise ValueError("a sentinel REDIS_URL starts with redis:// or rediss://")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        password = unquote(auth.partition(":")[2] or auth) or None
    sentinels = []
    for part in netloc.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"sentinel address {part.strip()!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    db = path.strip() or "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    return SentinelAddress(tuple(sentinels), password, int(db), scheme == "rediss")


def redis_target(url: str) -> str:
    """Where ``url`` points, for readiness and logs: ``host:port`` (comma-separated for
    sentinels), never the password or the database (pure)."""
    scheme, sep, rest = url.partition("://")
    if scheme == "unix":  # a socket (the embedded Redis): its path, without password or db
        return "unix:" + rest.rpartition("@")[2].partition("?")[0]
    netloc = (rest if sep else url).partition("/")[0].partition("?")[0]
    netloc = netloc.rpartition("@")[2]
    hosts = []
    for part in netloc.split(","):
        part = part.strip()
        if part:
            hosts.append(part if part.rpartition(":")[2].isdigit() else f"{part}:6379")
    return ",".join(hosts) or "?"


def connect(url: str, mode: RedisMode = "standalone", master: str = "mymaster") -> aioredis.Redis:
    """A client for ``url`` read as ``mode``.

    A Cluster client is returned under the standalone client's type: it answers every
    command the gateway sends (each names keys of one slot), which the Cluster tests
    prove against a real cluster.
    """
    timeouts: dict[str, Any] = {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
    }
    if mode == "cluster":
        cluster = aioredis.RedisCluster.from_url(url, max_connections=MAX_CONNECTIONS, **timeouts)
        return cast(aioredis.Redis, cluster)
    if mode == "sentinel":
        address = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(address.sentinels),
            sentinel_kwargs={**timeouts, "password": address.password},
            **timeouts,
        )
        primary: aioredis.Redis = sentinel.master_for(
            master, password=address.password, db=address.db, ssl=address.tls
        )
        setattr(primary, _SENTINELS, sentinel.sentinels)  # closed by close()
        return primary
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=TIMEOUT_SECONDS, **timeouts
    )
    return aioredis.Redis(connection_pool=pool)


async def close(client: aioredis.Redis) -> None:
    """Close a client from :func:`connect` and every connection it opened: its pool
    (a Sentinel client's pool is not its own to close otherwise) and its sentinels."""
    if isinstance(client, aioredis.RedisCluster):
        await client.aclose()
        return
    await client.aclose(close_connection_pool=True)
    for sentinel in getattr(client, _SENTINELS, ()):
        await sentinel.aclose()


def text(reply: object) -> str | None:
    """A Redis reply as text (None for a missing value)."""
    if reply is None or reply is False:
        return None
    return reply.decode() if isinstance(reply, bytes) else str(reply)
