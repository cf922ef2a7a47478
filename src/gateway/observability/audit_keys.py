"""The audit trail's signing keys: its own key (``AUDIT_HMAC_KEY``), and how a record
names the key that signed it.

Each record carries ``key``, a short fingerprint of its signing key (never the key),
so a trail signed by several keys in turn — the key was rotated — is verified with
each key where it signed. Records made before the trail had its own key were signed
with a key derived from ``AUTH_JWT_SECRET`` (:func:`derived_key`) and name no key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field


def key_id(key: bytes) -> str:
    """The fingerprint a record names its key by: 16 hex digits, useless as the key."""
    return hashlib.sha256(b"stt-gateway audit key id\x00" + key).hexdigest()[:16]


def derived_key(secret: str) -> bytes:
    """The key of trails written before ``AUDIT_HMAC_KEY`` existed (from the JWT secret)."""
    return hmac.new(secret.encode(), b"stt-gateway audit trail v1", hashlib.sha256).digest()


def from_text(value: str) -> bytes:
    return value.strip().encode()


@dataclass(frozen=True)
class KeyRing:
    """Every key a verification may use; records that name no key try each of them."""

    keys: tuple[bytes, ...]
    by_id: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {key_id(k): k for k in self.keys})

    @classmethod
    def of(cls, keys: bytes | Iterable[bytes]) -> KeyRing:
        return cls((keys,) if isinstance(keys, bytes) else tuple(dict.fromkeys(keys)))

    def for_record(self, named: object) -> tuple[bytes, ...]:
        """The keys that may have signed a record naming ``named`` (None: every key)."""
        if named is None:
            return self.keys
        key = self.by_id.get(str(named))
        return (key,) if key is not None else ()
