"""The audit trail's hash chain detects edits, deletions and reordering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.observability.audit import AuditTrail, actor, audit_key, verify

KEY = audit_key("k" * 32)


def _trail(path: Path, n: int = 5) -> None:
    trail = AuditTrail(path, KEY)
    for i in range(n):
        trail.record(
            "budget.updated",
            who=actor(f"user-{i}", "school_admin"),
            school_id="s-1",
            old={"daily_limit_usd": i},
            new={"daily_limit_usd": i + 1},
        )


def test_intact_chain_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 3)
    _trail(path, 2)  # a restart continues the chain
    result = verify(path, KEY)
    assert result.ok and result.records == 5
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) >= {"seq", "ts", "event", "actor", "school_id", "prev", "hash"}
    assert first["actor"] == {"sub": "user-0", "role": "school_admin"}


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "truncate_hash"])
def test_tampering_is_detected(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.log"
    _trail(path)
    lines = path.read_text().splitlines()
    if tamper == "edit":
        lines[2] = lines[2].replace('"daily_limit_usd":3', '"daily_limit_usd":300')
    elif tamper == "delete":
        del lines[2]
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        record = json.loads(lines[4])
        record["hash"] = "0" * 64
        lines[4] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify(path, KEY)
    assert not result.ok and result.problem


def test_wrong_key_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path)
    assert not verify(path, audit_key("another-secret")).ok


def test_never_records_speech(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "a.log", KEY)
    with pytest.raises(ValueError, match="never"):
        trail.record("session.ended", text="what the child said")


def test_cli_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    secret = "s" * 32
    trail = AuditTrail(path, audit_key(secret))
    trail.record("token.issued", school_id="s-1")
    env = {**os.environ, "AUTH_JWT_SECRET": secret, "DATA_DIR": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "1 records" in ok.stdout
    path.write_text(path.read_text().replace("s-1", "s-2"))
    bad = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "seq 1" in bad.stdout


@pytest.mark.parametrize("cut", [1, 3])
def test_records_deleted_from_the_end_are_detected(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "audit.log"
    _trail(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-cut]) + "\n")
    result = verify(path, KEY)
    assert not result.ok and "deleted from the end" in str(result.problem)


def test_a_forged_or_missing_head_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 3)
    head = path.with_name("audit.log.head")
    forged = json.loads(head.read_text())
    forged["seq"] = 2
    head.write_text(json.dumps(forged))
    assert "signature" in str(verify(path, KEY).problem)
    head.unlink()
    assert "missing" in str(verify(path, KEY).problem)


def test_a_restart_after_a_cut_records_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 4)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    trail = AuditTrail(path, KEY)
    trail.record("token.issued", school_id="s-1")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[2]["event"] == "audit.head_mismatch" and "seq 4" in records[2]["problem"]
    assert verify(path, KEY).ok
