"""Verifying an audit trail (:mod:`.audit`): its chain, its head, every line.

Each record is checked with the key it names (:mod:`.audit_keys`), so a trail
whose key was rotated verifies with the keys that signed its parts. Every
malformed line is reported (never a traceback), a torn last line is named as
such, and an empty trail fails: each gateway start records ``audit.opened``.
What the gateway repaired or noticed itself (a torn tail cut, a cut trail, a
key change) verifies, and is listed in ``notes``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.observability.audit import GENESIS, digest, head_path, read_head
from gateway.observability.audit_keys import KeyRing

#: Problems listed at most (a trail of garbage is not printed whole).
MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        return self.problems[0] if self.problems else None


@dataclass
class _Walk:
    ring: KeyRing
    records: int = 0
    prev: str = GENESIS
    broken: bool = False
    #: The head's seq, and the hash of the record at that seq.
    head_seq: int = 0
    head_record: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signer: str | None = None

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def verify(path: Path, keys: bytes | Iterable[bytes]) -> VerifyResult:
    ring = KeyRing.of(keys)
    if not path.exists():
        return VerifyResult(False, 0, (f"{path} does not exist",))
    head = read_head(path, ring)
    walk = _Walk(ring, head_seq=head[0] if isinstance(head, tuple) else 0)
    for number, line, last in _lines(path):
        _check_line(walk, number, line, last)
    if walk.records == 0 and not walk.problems:
        walk.problem(
            "the trail is empty: every gateway start records audit.opened, so it was emptied"
        )
    if not walk.broken:
        _check_head(path, head, walk)
    return VerifyResult(not walk.problems, walk.records, tuple(walk.problems), tuple(walk.notes))


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Each line, and whether it is a torn last line (no newline after it)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            torn = not line.endswith(b"\n")
            yield number, line.decode("utf-8", "replace").rstrip("\n"), torn


def _check_line(walk: _Walk, number: int, line: str, torn: bool) -> None:
    if not line.strip():
        return
    record = _parse(line)
    if record is None:
        if torn:
            walk.problem(
                f"line {number}: the last record is torn ({len(line.encode())} bytes; a crash "
                "or a full disk mid-write): the gateway cuts it at its next start"
            )
        else:
            walk.problem(f"line {number}: not a record")
        walk.broken = True
        return
    if walk.broken:
        return  # the chain is already broken; only the lines' shape is still checked
    claimed = str(record.pop("hash"))
    seq = walk.records + 1
    if record.get("seq") != seq:
        walk.problem(
            f"line {number} (seq {record.get('seq')}): expected seq {seq}: "
            "a record was deleted, inserted or moved"
        )
        walk.broken = True
    elif record.get("prev") != walk.prev:
        walk.problem(f"line {number} (seq {seq}): prev does not match the previous record's hash")
        walk.broken = True
    elif not _signed(walk.ring, record, walk.prev, claimed):
        walk.problem(f"line {number} (seq {seq}): hash mismatch: the record was edited")
        walk.broken = True
    else:
        _note(walk, seq, record)
        walk.records, walk.prev = seq, claimed
        if seq == walk.head_seq:
            walk.head_record = claimed


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return None
    return record


def _signed(ring: KeyRing, record: dict[str, Any], prev: str, claimed: str) -> bool:
    return any(
        hmac.compare_digest(digest(key, prev, record), claimed)
        for key in ring.for_record(record.get("key"))
    )


def _note(walk: _Walk, seq: int, record: dict[str, Any]) -> None:
    event = record.get("event")
    signer = record.get("key")
    if walk.signer is not None and signer != walk.signer:
        walk.notes.append(f"seq {seq}: signed from here with key {signer or '(derived)'}")
    walk.signer = signer
    if event == "audit.tail_repaired":
        walk.notes.append(
            f"seq {seq}: at start-up the gateway cut {record.get('bytes_cut')} bytes of a torn "
            "last record (a crash or a full disk mid-write)"
        )
    elif event == "audit.head_mismatch":
        walk.notes.append(f"seq {seq}: at start-up the gateway found {record.get('problem')}")


def _check_head(path: Path, head: tuple[int, str] | str | None, walk: _Walk) -> None:
    if head is None:
        if walk.records:
            walk.problem(f"{head_path(path)} is missing")
        return
    if isinstance(head, str):
        walk.problem(head)
        return
    seq, hash_ = head
    if seq > walk.records:
        walk.problem(
            f"the trail ends at seq {walk.records} but its head names seq {seq}: "
            "records were deleted from the end"
        )
    elif seq and walk.head_record != hash_:
        walk.problem(f"seq {seq} does not match the head: the trail was rewritten")
