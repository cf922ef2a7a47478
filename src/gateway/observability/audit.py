"""The FERPA audit trail: append-only JSON lines, chained with HMAC-SHA256.

Each record holds ``seq``, ``ts``, ``event``, ``actor`` (``{"sub","role"}``
from the token, or ``"system"``), ``school_id``, the event's fields, ``key``
(the fingerprint of the key that signed it, :mod:`.audit_keys`), ``prev`` (the
previous record's hash) and ``hash`` = HMAC-SHA256(key, prev + canonical JSON
of the record without ``hash``). :mod:`.audit_verify` detects any edit,
deletion, insertion or reordering. It records who did what — never what was
said.

Records deleted from the end leave a valid chain, so a signed **head** is kept
apart from the trail (``<trail>.head``, rewritten in place after each record):
the last ``seq`` and ``hash``, with an HMAC. A trail shorter than its head, or
whose record at the head's ``seq`` has another hash, was cut or rewritten. Every
start records ``audit.opened``, so a trail is never legitimately empty.

A crash or a full disk mid-write leaves a torn last line: the next start cuts
it, and records ``audit.tail_repaired`` with the bytes cut.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.observability.audit_keys import KeyRing, key_id
from gateway.observability.logging import get_logger

log = get_logger("gateway.audit")
GENESIS = "0" * 64
SYSTEM = "system"
_FORBIDDEN_FIELDS = frozenset({"text", "transcript", "audio", "prompt", "token"})
#: How far back from the end a start looks for the last whole record.
TAIL_BYTES = 65536


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(key: bytes, prev: str, body: dict[str, Any]) -> str:
    return hmac.new(key, (prev + canonical(body)).encode(), hashlib.sha256).hexdigest()


def head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _head_mac(key: bytes, seq: int, hash_: str) -> str:
    return hmac.new(key, f"head:{seq}:{hash_}".encode(), hashlib.sha256).hexdigest()


#: The head is rewritten in place at a fixed size: one small write per record, no new file.
HEAD_BYTES = 256


def _head_bytes(key: bytes, seq: int, hash_: str) -> bytes:
    head = {"seq": seq, "hash": hash_, "key": key_id(key), "mac": _head_mac(key, seq, hash_)}
    return (json.dumps(head) + "\n").encode().ljust(HEAD_BYTES)


def read_head(path: Path, ring: KeyRing) -> tuple[int, str] | str | None:
    """The head's (seq, hash); a problem string when it is forged or unreadable; None if absent."""
    try:
        raw = head_path(path).read_bytes().strip()
        if not raw:
            return None  # created, nothing recorded yet
        head = json.loads(raw)
        seq, hash_ = int(head["seq"]), str(head["hash"])
        keys = ring.for_record(head.get("key"))
        valid = any(hmac.compare_digest(_head_mac(k, seq, hash_), str(head["mac"])) for k in keys)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "the head file is unreadable"
    return (seq, hash_) if valid else "the head file's signature does not match"


def actor(sub: str | None, role: str | None) -> dict[str, str] | str:
    return {"sub": sub, "role": role} if sub and role else SYSTEM


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline, not a whole record); the bytes cut (0: none)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_BYTES)
        handle.seek(start)
        tail = handle.read()
        if tail.endswith(b"\n"):
            return 0
        cut_at = tail.rfind(b"\n") + 1
        try:
            whole = isinstance(json.loads(tail[cut_at:]), dict)
        except ValueError:
            whole = False
        if whole:  # the record was written, its newline was not
            handle.write(b"\n")
            return 0
        handle.truncate(start + cut_at)
        return size - (start + cut_at)


class AuditTrail:
    """``key`` signs new records; ``older_keys`` are keys that signed earlier parts (a
    rotated key, the key derived from ``AUTH_JWT_SECRET``), for checking the head at
    start. ``on_record`` hears each record's (seq, hash): the anchor kept in Redis."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        *,
        older_keys: Iterable[bytes] = (),
        on_record: Callable[[int, str], None] | None = None,
    ) -> None:
        self.path = path
        self._key, self._key_id = key, key_id(key)
        self._ring = KeyRing.of([key, *older_keys])
        self._lock = threading.Lock()
        self.on_record = on_record
        path.parent.mkdir(parents=True, exist_ok=True)
        cut = repair_tail(path)
        self._seq, self._prev = self._tail()
        problem = self._head_problem()
        self._head_fd = os.open(head_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        if cut:
            log.critical("audit.tail_repaired", bytes_cut=cut, path=str(path))
            self.record("audit.tail_repaired", bytes_cut=cut, after_seq=self._seq)
        if problem:
            self.mismatch(problem)
        self.record("audit.opened")

    @property
    def seq(self) -> int:
        return self._seq

    def mismatch(self, problem: str) -> None:
        """A trail cut behind the gateway's back is recorded, not silently continued."""
        log.critical("audit.head_mismatch", problem=problem, path=str(self.path))
        self.record("audit.head_mismatch", problem=problem)

    def hash_at(self, seq: int) -> str | None:
        """The hash of record ``seq`` of this trail, None if it has no such record."""
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("seq") == seq:
                    return str(record.get("hash"))
        return None

    def _head_problem(self) -> str | None:
        head = read_head(self.path, self._ring)
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
            handle.seek(max(0, size - TAIL_BYTES))
            lines = [line for line in handle.read().splitlines() if line.strip()]
        for line in reversed(lines):
            try:
                last = json.loads(line)
                return int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError):
                # Not a record: the chain goes on from the last one; verification reports it.
                log.critical("audit.line_unreadable", path=str(self.path))
        return 0, GENESIS

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
                "key": self._key_id,
                "prev": self._prev,
            }
            body["hash"] = digest(self._key, self._prev, body)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(canonical(body) + "\n")
                handle.flush()
            self._seq, self._prev = body["seq"], body["hash"]
            os.pwrite(self._head_fd, _head_bytes(self._key, self._seq, self._prev), 0)
        if self.on_record is not None:
            self.on_record(body["seq"], body["hash"])
        return body
