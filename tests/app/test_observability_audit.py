"""The audit trail's hash chain detects edits, deletions and reordering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.observability.audit import AuditTrail, actor
from gateway.observability.audit_keys import derived_key as audit_key
from gateway.observability.audit_verify import verify

KEY = b"k" * 32


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
    assert result.ok and result.records == 7  # and each start records audit.opened
    first = json.loads(path.read_text().splitlines()[1])
    assert set(first) >= {"seq", "ts", "event", "actor", "school_id", "prev", "hash"}
    assert first["actor"] == {"sub": "user-0", "role": "school_admin"}


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "truncate_hash"])
def test_tampering_is_detected(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.log"
    _trail(path)
    lines = path.read_text().splitlines()
    if tamper == "edit":
        lines[3] = lines[3].replace('"daily_limit_usd":3', '"daily_limit_usd":300')
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
    assert not verify(path, b"another-key-" * 3).ok


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
    assert ok.returncode == 0 and "2 records" in ok.stdout
    path.write_text(path.read_text().replace("s-1", "s-2"))
    bad = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "seq 2" in bad.stdout


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
    assert records[2]["event"] == "audit.head_mismatch" and "seq 5" in records[2]["problem"]
    result = verify(path, KEY)
    assert result.ok and any("head named seq 5" in note for note in result.notes)


def test_a_torn_last_line_is_cut_at_start_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 3)
    whole = path.read_bytes()
    torn = b'{"seq":5,"ts":"2026-12-0'  # a crash or a full disk mid-write
    path.write_bytes(whole + torn)
    before = verify(path, KEY)
    assert not before.ok and "torn" in str(before.problem) and "line 5" in str(before.problem)
    trail = AuditTrail(path, KEY)  # the next start repairs it, and says so
    trail.record("token.issued", school_id="s-1")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[4]["event"] == "audit.tail_repaired"
    assert records[4]["bytes_cut"] == len(torn) and records[4]["after_seq"] == 4
    after = verify(path, KEY)
    assert after.ok and after.records == 7
    assert any(f"cut {len(torn)} bytes" in note for note in after.notes)


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    AuditTrail(path, KEY)
    result = verify(path, KEY)
    assert result.ok and result.records == 4 and not result.notes


@pytest.mark.parametrize("wipe", ["empty", "empty_and_head_deleted"])
def test_a_wiped_trail_fails(tmp_path: Path, wipe: str) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 3)
    path.write_text("")
    if wipe == "empty_and_head_deleted":
        path.with_name("audit.log.head").unlink()
        assert "empty" in str(verify(path, KEY).problem)
    else:
        assert not verify(path, KEY).ok


def test_every_malformed_line_is_reported_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _trail(path, 2)
    lines = path.read_text().splitlines()
    lines[1:1] = ["[]", "7", "null", '{"no": "hash"}', "not json"]
    path.write_text("\n".join(lines) + "\n")
    result = verify(path, KEY)
    assert not result.ok
    assert [p.split(":")[0] for p in result.problems] == [f"line {n}" for n in range(2, 7)]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", str(path)],
        env={**os.environ, "AUDIT_HMAC_KEY": KEY.decode(), "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert done.stdout.count("not a record") == 5


def test_a_rotated_key_verifies_with_the_key_of_each_part(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    old, new = b"o" * 32, b"n" * 32
    AuditTrail(path, old).record("token.issued", school_id="s-1")
    AuditTrail(path, new, older_keys=[old]).record("token.issued", school_id="s-1")
    both = verify(path, [new, old])
    assert both.ok and both.records == 4
    assert any("signed from here with key" in note for note in both.notes)
    assert not verify(path, new).ok  # the first part needs its own key
    (tmp_path / "old.key").write_bytes(old)
    old_file = str(tmp_path / "old.key")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", str(path), "--key-file", old_file],
        env={**os.environ, "AUDIT_HMAC_KEY": new.decode(), "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
    assert "4 records, chain intact" in done.stdout


def test_the_trail_does_not_depend_on_the_jwt_secret(tmp_path: Path) -> None:
    """Rotating AUTH_JWT_SECRET leaves the trail verifiable: it has its own key."""
    path = tmp_path / "audit.log"
    env = {**os.environ, "DATA_DIR": str(tmp_path), "AUDIT_LOG_PATH": str(path)}
    for secret in ("first-secret-" * 3, "second-secret-" * 3):
        code = (
            "from gateway.settings import load_settings; from gateway.web.app import create_app;"
            "create_app(load_settings())"
        )
        run = {**env, "AUTH_JWT_SECRET": secret}
        subprocess.run([sys.executable, "-c", code], env=run, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify"],
        env={**env, "AUTH_JWT_SECRET": "a-third-secret-" * 3},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "audit-key").exists()
