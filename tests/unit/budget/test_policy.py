"""Policy validation fails closed and lists every problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.budget.policy import Policy, load_policy, problems
from gateway.budget.pricing import Pricing
from gateway.errors import PolicyError

DEV = json.loads(Path("config/budget-policy.dev.json").read_text())


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_shipped_policies_are_valid(name: str) -> None:
    assert problems(json.loads(Path(f"config/budget-policy.{name}.json").read_text())) == []


def test_every_problem_is_listed() -> None:
    bad = json.loads(json.dumps(DEV))
    bad["unknown_key"] = 1
    bad["schools"]["s-1"]["timezone"] = "Mars/Olympus"
    bad["schools"]["s-2"] = {"district_id": "nowhere"}
    bad["models"]["whisper-9"] = {"daily_limit_usd": 1}
    bad["downgrade"] = [{"at_percent": 90, "model": "x"}, {"at_percent": 80, "model": "whisper-1"}]
    found = problems(bad)
    joined = "\n".join(found)
    for fragment in ("unknown_key", "Mars/Olympus", "nowhere", "whisper-9", "'x'", "ascending"):
        assert fragment in joined, fragment
    with pytest.raises(PolicyError) as info:
        Policy.from_document(bad)
    assert len(info.value.problems) == len(found)


def test_defaults_and_downgrade() -> None:
    policy = Policy.from_document(DEV)
    unknown = policy.school("s-unlisted")
    assert (unknown.daily_limit_micro, unknown.timezone, unknown.district_id) == (
        5_000_000,
        "UTC",
        None,
    )
    assert policy.school("s-unlisted", district_claim="d-1").district_id == "d-1"
    assert policy.downgraded_model("whisper-1", 79.9) == "whisper-1"
    assert policy.downgraded_model("whisper-1", 80) == "gpt-4o-mini-transcribe"


def test_cost_rounds_to_the_micro_dollar() -> None:
    pricing = Pricing({"whisper-1": 0.006})
    assert pricing.cost_micro("whisper-1", 60) == 6000
    assert pricing.cost_micro("whisper-1", 1.0) == 100
    assert pricing.cost_micro("whisper-1", 0.0251) == 3  # 2.51 µ$ → 3


def test_missing_file_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.json")


def test_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**DEV, "extra": 1, "version": 2}))
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "policy", "validate"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "policy", "validate", str(bad)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert len(out.stdout.strip().splitlines()) == 2
