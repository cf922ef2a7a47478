"""Failed authentications: a per-address limit and an aggregated audit record.

Pure bookkeeping (the caller passes the time), bounded in memory:

- :class:`FailureLimiter` counts failures per client address in fixed windows;
  past ``limit`` in one window the address is *blocked* until the window ends:
  its further failures are answered 429 with ``Retry-After`` and cost neither
  an audit record nor a log line. Valid tokens from a blocked address still
  pass (a school's classrooms share one NAT address; one broken device must
  not lock out the rest).
- :class:`DenialAggregator` turns a flood of denials into one audit record per
  (address, reason, route) and interval: the first denial is recorded at once,
  the rest of the interval as one record with its ``count``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Addresses (or denial keys) tracked at once; the oldest are forgotten beyond it.
MAX_TRACKED = 50_000


@dataclass(slots=True)
class _Window:
    started: float
    failures: int = 0


class FailureLimiter:
    def __init__(self, limit: int, window_seconds: float, max_tracked: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window_seconds
        self._max = max_tracked
        self._windows: dict[str, _Window] = {}

    def blocked_for(self, address: str, now: float) -> float:
        """Seconds until ``address`` may fail again without a 429 (0: not blocked)."""
        window = self._windows.get(address)
        if window is None or now - window.started >= self.window:
            return 0.0
        if window.failures < self.limit:
            return 0.0
        return max(0.0, window.started + self.window - now)

    def failed(self, address: str, now: float) -> None:
        window = self._windows.get(address)
        if window is None or now - window.started >= self.window:
            self._windows.pop(address, None)
            self._bound(now)
            window = self._windows[address] = _Window(now)
        window.failures += 1

    def __len__(self) -> int:
        return len(self._windows)

    def _bound(self, now: float) -> None:
        if len(self._windows) < self._max:
            return
        for key in [k for k, w in self._windows.items() if now - w.started >= self.window]:
            del self._windows[key]
        while len(self._windows) >= self._max:
            del self._windows[next(iter(self._windows))]


#: What makes denials alike: source address, reason, route, and the caller when known.
DenialKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Denial:
    """One audit record to write: ``count`` denials alike (``key``) in ``first_at..last_at``."""

    key: DenialKey
    count: int
    first_at: float
    last_at: float
    #: The rest of an interval (after its first denial, which is recorded at once).
    summary: bool = False


@dataclass(slots=True)
class _Bucket:
    opened: float
    first_at: float = 0.0
    last_at: float = 0.0
    pending: int = 0


class DenialAggregator:
    def __init__(self, interval_seconds: float, max_tracked: int = MAX_TRACKED) -> None:
        self.interval = interval_seconds
        self._max = max_tracked
        self._buckets: dict[DenialKey, _Bucket] = {}

    def denied(self, key: DenialKey, now: float) -> list[Denial]:
        """Count one denial; the records due now (this one if it opens an interval)."""
        due = self.flush(now) if len(self._buckets) >= self._max else []
        bucket = self._buckets.get(key)
        if bucket is not None and now - bucket.opened >= self.interval:
            due += self._close(key, bucket)
            bucket = None
        if bucket is None:
            while len(self._buckets) >= self._max:
                oldest = next(iter(self._buckets))
                due += self._close(oldest, self._buckets[oldest])
            self._buckets[key] = _Bucket(now)
            return [*due, Denial(key, 1, now, now)]
        if not bucket.pending:
            bucket.first_at = now
        bucket.pending += 1
        bucket.last_at = now
        return due

    def flush(self, now: float, *, everything: bool = False) -> list[Denial]:
        """The records of intervals that ended (of all, at shutdown)."""
        due: list[Denial] = []
        for key, bucket in list(self._buckets.items()):
            if everything or now - bucket.opened >= self.interval:
                due += self._close(key, bucket)
        return due

    def __len__(self) -> int:
        return len(self._buckets)

    def _close(self, key: DenialKey, bucket: _Bucket) -> list[Denial]:
        del self._buckets[key]
        if not bucket.pending:
            return []
        return [Denial(key, bucket.pending, bucket.first_at, bucket.last_at, summary=True)]
