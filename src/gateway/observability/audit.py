"""The FERPA audit trail: append-only JSON lines, chained with HMAC-SHA256.

Each record holds ``seq``, ``ts``, ``event``, ``actor`` (``{"sub","role"}``
from the token, or ``"system"``), ``school_id``, the event's fields, ``prev``
(the previous record's hash) and ``hash`` = HMAC-SHA256(key, prev + canonical
JSON of the record without ``hash``). :func:`verify` detects any edit,
deletion, insertion or reordering. It records who did what — never what was
said.

Records deleted from the end leave a valid chain, so a signed **head** is kept
apart from the trail (``<trail>.head``, replaced atomically after each record):
the last ``seq`` and ``hash``, with an HMAC. A trail shorter than its head, or
whose record at the head's ``seq`` has another hash, was cut or rewritten.
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

from gateway.observability.logging import get_logger

log = get_logger("gateway.audit")
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


def head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _head_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"head:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


#: The head is rewritten in place at a fixed size: one small write per record, no new file.
HEAD_BYTES = 256


def _head_bytes(key: bytes, seq: int, digest: str) -> bytes:
    head = {"seq": seq, "hash": digest, "mac": _head_mac(key, seq, digest)}
    return (json.dumps(head) + "\n").encode().ljust(HEAD_BYTES)


def _read_head(path: Path, key: bytes) -> tuple[int, str] | str | None:
    """The head's (seq, hash); a problem string when it is forged or unreadable; None if absent."""
    try:
        raw = head_path(path).read_bytes().strip()
        if not raw:
            return None  # created, nothing recorded yet
        head = json.loads(raw)
        seq, digest = int(head["seq"]), str(head["hash"])
        valid = hmac.compare_digest(_head_mac(key, seq, digest), str(head["mac"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return "the head file is unreadable"
    return (seq, digest) if valid else "the head file's signature does not match"


def actor(sub: str | None, role: str | None) -> dict[str, str] | str:
    return {"sub": sub, "role": role} if sub and role else SYSTEM


class AuditTrail:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._tail()
        problem = self._head_problem()
        self._head_fd = os.open(head_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        if problem:
            # A trail cut behind the gateway's back is recorded, not silently continued.
            log.critical("audit.head_mismatch", problem=problem, path=str(self.path))
            self.record("audit.head_mismatch", problem=problem)

    def _head_problem(self) -> str | None:
        head = _read_head(self.path, self._key)
        problem: str | None = head if isinstance(head, str) else None
        if head is None and self._seq > 0:
            problem = "the head file is missing"
        elif isinstance(head, tuple) and head[0] > self._seq:
            problem = f"the trail ends at seq {self._seq} but its head named seq {head[0]}"
        return problem

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
            os.pwrite(self._head_fd, _head_bytes(self._key, self._seq, self._prev), 0)
            return body


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    problem: str | None = None


def verify(path: Path, key: bytes) -> VerifyResult:
    if not path.exists():
        return VerifyResult(False, 0, f"{path} does not exist")
    result = _verify_chain(path, key)
    if not result.ok:
        return result
    return _verify_head(path, key, result)


def _verify_head(path: Path, key: bytes, chain: VerifyResult) -> VerifyResult:
    head = _read_head(path, key)
    if head is None:
        if chain.records == 0:
            return chain
        return VerifyResult(False, chain.records, f"{head_path(path)} is missing")
    if isinstance(head, str):
        return VerifyResult(False, chain.records, head)
    seq, digest = head
    if seq > chain.records:
        return VerifyResult(
            False,
            chain.records,
            f"the trail ends at seq {chain.records} but its head names seq {seq}: "
            "records were deleted from the end",
        )
    if seq and _hash_at(path, seq) != digest:
        return VerifyResult(
            False, chain.records, f"seq {seq} does not match the head: the trail was rewritten"
        )
    return chain


def _hash_at(path: Path, seq: int) -> str | None:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if record.get("seq") == seq:
                    return str(record.get("hash"))
    return None


def _verify_chain(path: Path, key: bytes) -> VerifyResult:
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
