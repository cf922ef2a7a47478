"""Redis failing, as every caller sees it, and the one boundary that translates it.

A Redis that is unreachable, times out, refuses a write (out of memory, a
read-only replica) or answers with a script error raises one of
:data:`REDIS_ERRORS` inside the Redis client. The gateway's Redis-facing
classes (the ledger, the fleet, presence, link codes, the audit anchor, the
RPM limiter, the readiness probe) run their calls inside
:func:`map_redis_errors` (or under :func:`translated`), so everything above
them sees only the error tree's :class:`~gateway.errors.LedgerUnavailable`,
with the cause kept.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import redis.exceptions

from gateway.errors import LedgerUnavailable

#: Redis unreachable or failing (TimeoutError, ConnectionRefusedError and the like are OSErrors).
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def map_redis_errors() -> Iterator[None]:
    """Raise :class:`LedgerUnavailable` for any Redis failure inside the block."""
    try:
        yield
    except REDIS_ERRORS as exc:
        refused = isinstance(exc, redis.exceptions.ResponseError)
        first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
        message = f"{type(exc).__name__}: {first_line}" if refused else type(exc).__name__
        raise LedgerUnavailable(message, error=type(exc).__name__, refused=refused) from exc


def translated(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """An async method whose Redis failures come out as :class:`LedgerUnavailable`."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with map_redis_errors():
            return await call(*args, **kwargs)

    return wrapper
