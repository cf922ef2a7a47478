"""Exclusive lock files: one gateway per data directory, one embedded Redis per ledger.

``flock`` locks belong to the open file: a child process that inherits the
descriptor keeps the lock alive after its parent is gone, so a leftover
embedded Redis still holds its data directory and a second one can never
start on the same files.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from gateway.errors import ConfigurationError


def hold(path: Path, busy: str) -> IO[str]:
    """Open and lock ``path`` (created if needed); ConfigurationError ``busy`` if it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the owner's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigurationError(busy) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
