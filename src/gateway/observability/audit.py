"""The FERPA audit trail: append-only JSON lines, chained with HMAC-SHA256.

Each record holds ``seq``, ``ts``, ``event``, ``actor`` (``{"sub","role"}``
from the token, or ``"system"``), ``school_id``, the event's fields, ``prev``
(the previous record's hash) and ``hash`` = HMAC-SHA256(key, prev + canonical
JSON of the record without ``hash``). :func:`verify` detects any edit,
deletion, insertion or reordering. It records who did what — never what was
said.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
SYSTEM = "system"
_FORBIDDEN_FIELDS = frozenset({"text", "transcript", "audio", "prompt", "token"})


def audit_key(secret: str) -> bytes:
    """The chain key, derived from the JWT secret so no extra secret must be managed."""
    return hmac.new(secret.encode(), b"stt-gateway audit trail v1", hashlib.sha256).digest()


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(key: bytes, prev: str, body: dict[str, Any]) -> str:
    return hmac.new(key, (prev + canonical(body)).encode(), hashlib.sha256).hexdigest()


def actor(sub: str | None, role: str | None) -> dict[str, str] | str:
    return {"sub": sub, "role": role} if sub and role else SYSTEM


class AuditTrail:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._tail()

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            lines = [line for line in handle.read().splitlines() if line.strip()]
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])

    def record(
        self,
        event: str,
        *,
        who: dict[str, str] | str = SYSTEM,
        school_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        leaked = _FORBIDDEN_FIELDS & fields.keys()
        if leaked:
            raise ValueError(f"audit records never hold {sorted(leaked)}")
        with self._lock:
            body: dict[str, Any] = {
                "seq": self._seq + 1,
                "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "event": event,
                "actor": who,
                "school_id": school_id,
                **fields,
                "prev": self._prev,
            }
            body["hash"] = _digest(self._key, self._prev, body)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(canonical(body) + "\n")
                handle.flush()
            self._seq, self._prev = body["seq"], body["hash"]
            return body


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    problem: str | None = None


def verify(path: Path, key: bytes) -> VerifyResult:
    if not path.exists():
        return VerifyResult(False, 0, f"{path} does not exist")
    prev, expected_seq = GENESIS, 1
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                claimed = record.pop("hash")
            except (ValueError, KeyError, AttributeError):
                return VerifyResult(False, expected_seq - 1, f"line {number}: not a record")
            if record.get("seq") != expected_seq:
                return VerifyResult(
                    False,
                    expected_seq - 1,
                    f"line {number} (seq {record.get('seq')}): expected seq "
                    f"{expected_seq}: a record was deleted, inserted or moved",
                )
            if record.get("prev") != prev:
                return VerifyResult(
                    False,
                    expected_seq - 1,
                    f"line {number} (seq {expected_seq}): prev does not match "
                    "the previous record's hash",
                )
            if not hmac.compare_digest(_digest(key, prev, record), str(claimed)):
                return VerifyResult(
                    False,
                    expected_seq - 1,
                    f"line {number} (seq {expected_seq}): hash mismatch: the record was edited",
                )
            prev, expected_seq = claimed, expected_seq + 1
    return VerifyResult(True, expected_seq - 1)
