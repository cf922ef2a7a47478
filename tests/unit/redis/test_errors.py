"""The one boundary where Redis errors become the error tree's LedgerUnavailable."""

from __future__ import annotations

import pytest
import redis.exceptions

from gateway.errors import LedgerNotReplicated, LedgerUnavailable
from gateway.redis.errors import map_redis_errors, translated


def test_an_unreachable_redis_is_named_without_its_message() -> None:
    with pytest.raises(LedgerUnavailable) as caught, map_redis_errors():
        raise redis.exceptions.ConnectionError("Error 111 connecting to redis:6379 (secret-host)")
    assert caught.value.error == "ConnectionError"
    assert not caught.value.refused
    assert "secret-host" not in caught.value.message  # an address is not for the client
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


def test_a_refused_write_keeps_redis_reason() -> None:
    with pytest.raises(LedgerUnavailable) as caught, map_redis_errors():
        raise redis.exceptions.OutOfMemoryError("OOM command not allowed\nmore")
    assert caught.value.refused and caught.value.error == "OutOfMemoryError"
    assert caught.value.message == "OutOfMemoryError: OOM command not allowed"


def test_timeouts_and_socket_errors_are_redis_failures() -> None:
    for error in (TimeoutError(), ConnectionResetError()):
        with pytest.raises(LedgerUnavailable), map_redis_errors():
            raise error


def test_other_errors_and_the_trees_own_pass_through() -> None:
    with pytest.raises(KeyError), map_redis_errors():
        raise KeyError("x")
    with pytest.raises(LedgerNotReplicated), map_redis_errors():
        raise LedgerNotReplicated("0 of 1 replicas have the charge")


async def test_a_translated_method_raises_the_trees_error() -> None:
    @translated
    async def call(fail: bool) -> int:
        if fail:
            raise redis.exceptions.TimeoutError()
        return 7

    assert await call(False) == 7
    with pytest.raises(LedgerUnavailable):
        await call(True)
