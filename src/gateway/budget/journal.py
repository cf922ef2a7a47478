"""The commit journal: a charge the ledger could not take is never forgotten.

When a commit cannot reach Redis, the charge is appended to a local JSON-lines
file (flushed and fsync'ed) before anything else happens, and replayed until
the ledger takes it — by this process while it runs, and by the next one on
the same ``DATA_DIR`` after a restart. Commits are idempotent (a reservation is
charged once), so replaying an entry twice is harmless; an entry whose hold has
expired in Redis is charged directly to the day keys it names.

Lines: ``{"op": "commit", "id", "actual_micro", "audio_ms", "model", "keys",
"school_id", "district_id", "school_day", "amount_micro"}`` and
``{"op": "done", "id"}``. Once nothing is pending the file is emptied.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.observability.logging import get_logger

log = get_logger("gateway.journal")


@dataclass(frozen=True, slots=True)
class PendingCommit:
    id: str
    actual_micro: int
    audio_ms: int
    model: str
    keys: tuple[str, ...]
    school_id: str
    district_id: str | None
    school_day: str
    amount_micro: int


class CommitJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, PendingCommit] = self._load()

    def _load(self) -> dict[str, PendingCommit]:
        pending: dict[str, PendingCommit] = {}
        if not self.path.exists():
            return pending
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry["op"] == "commit":
                    fields = {k: v for k, v in entry.items() if k != "op"}
                    fields["keys"] = tuple(fields["keys"])
                    pending[entry["id"]] = PendingCommit(**fields)
                else:
                    pending.pop(entry["id"], None)
            except (ValueError, KeyError, TypeError):
                # A line cut by a crash mid-write: the entries before and after still count.
                log.error("journal.unreadable_line", path=str(self.path), line=number)
        return pending

    @property
    def pending(self) -> list[PendingCommit]:
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, commit: PendingCommit) -> None:
        """Durably record a charge still owed to the ledger."""
        with self._lock:
            self._append({"op": "commit", **asdict(commit)})
            self._pending[commit.id] = commit

    def done(self, commit_id: str) -> None:
        with self._lock:
            if self._pending.pop(commit_id, None) is None:
                return
            if self._pending:
                self._append({"op": "done", "id": commit_id})
            else:
                with self.path.open("w", encoding="utf-8") as handle:
                    os.fsync(handle.fileno())

    def _append(self, entry: dict[str, object]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
