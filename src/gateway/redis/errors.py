"""Redis failing, as every caller sees it, and the one boundary that translates it.

A Redis that is unreachable, times out, refuses a write (out of memory, a
read-only replica) or answers with a script error raises one of
:data:`REDIS_ERRORS`; :func:`map_redis_errors` turns any of them into the
error tree's :class:`~gateway.errors.LedgerUnavailable`, keeping the cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions

from gateway.errors import LedgerUnavailable

#: Redis unreachable or failing (TimeoutError, ConnectionRefusedError and the like are OSErrors).
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


@contextmanager
def map_redis_errors() -> Iterator[None]:
    """Raise :class:`LedgerUnavailable` for any Redis failure inside the block."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise LedgerUnavailable(
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if str(exc)
            else type(exc).__name__
        ) from exc
