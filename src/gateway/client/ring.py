"""The audio a client keeps to send again after a drop (pure): positions count bytes of
16-bit PCM from the start of the stream; the oldest bytes go once ``max_bytes`` is held."""

from __future__ import annotations


class AudioRing:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data = bytearray()
        #: Stream position of the first byte held.
        self.first = 0

    @property
    def end(self) -> int:
        """Stream position after the last byte appended (everything ever sent)."""
        return self.first + len(self._data)

    def append(self, pcm: bytes) -> None:
        self._data += pcm
        over = len(self._data) - self.max_bytes
        if over > 0:
            over += over % 2  # keep whole samples
            del self._data[:over]
            self.first += over

    def since(self, position: int, most: int) -> bytes:
        """Up to ``most`` bytes from stream ``position`` on (from the oldest byte held when
        ``position`` is older: what fell out of the ring is gone)."""
        start = max(position, self.first) - self.first
        return bytes(self._data[start : start + most])
