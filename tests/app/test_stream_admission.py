"""One school cannot take every slot: its cap, and a fair share once the process is busy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.errors import Overloaded
from gateway.observability.metrics import Metrics
from gateway.stream.admission import Occupancy, fair_share, refusal
from gateway.stream.ending import Ending
from gateway.stream.registry import SessionRegistry
from tests.conftest import GatewayFactory
from tests.support.helpers import connect, token


def test_a_school_at_its_cap_is_refused_whatever_the_load() -> None:
    quiet = Occupancy(total=3, max_sessions=100, school_sessions=3, schools=1)
    assert refusal(quiet, cap=3) is not None
    assert refusal(quiet, cap=4) is None
    assert refusal(quiet, cap=None) is None


def test_below_the_busy_mark_a_school_may_take_more_than_its_share() -> None:
    occupancy = Occupancy(total=79, max_sessions=100, school_sessions=79, schools=1)
    assert refusal(occupancy, cap=None) is None


def test_when_busy_a_school_past_its_fair_share_waits_and_a_newcomer_does_not() -> None:
    hog = Occupancy(total=80, max_sessions=100, school_sessions=79, schools=2)
    assert fair_share(hog) == 50
    assert "fair share" in (refusal(hog, cap=None) or "")
    newcomer = Occupancy(total=80, max_sessions=100, school_sessions=0, schools=2)
    assert fair_share(newcomer) == 33
    assert refusal(newcomer, cap=None) is None
    small = Occupancy(total=80, max_sessions=100, school_sessions=1, schools=2)
    assert refusal(small, cap=None) is None


def test_the_fair_share_is_never_zero() -> None:
    crowded = Occupancy(total=9, max_sessions=10, school_sessions=0, schools=50)
    assert fair_share(crowded) == 1
    assert refusal(crowded, cap=None) is None


class _Session:
    def __init__(self, school: str, group: str) -> None:
        self.session_id = f"{school}/{group}"
        self.school_id, self.group_id = school, group
        self.finished = asyncio.Event()

    @property
    def key(self) -> tuple[str, str]:
        return (self.school_id, self.group_id)

    def request_end(self, ending: Ending) -> None:
        pass

    def presence(self) -> dict[str, Any]:
        return {}

    def budget_alert(self, *, percent_used: float, threshold: int, remaining_usd: float) -> None:
        pass


def test_the_registry_shares_its_slots_between_schools() -> None:
    registry = SessionRegistry(10, Metrics())
    hog = [_Session("hog", f"g{n}") for n in range(9)]
    for session in hog:  # alone, a school's share is every slot
        registry.check_admission(session.key)
        registry.register(session)  # type: ignore[arg-type]
    registry.unregister(hog.pop())  # type: ignore[arg-type]
    registry.register(_Session("other", "g0"))  # type: ignore[arg-type]
    with pytest.raises(Overloaded, match="fair share") as refused:
        registry.check_admission(("hog", "g9"))
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    registry.check_admission(("other", "g1"))  # within its share
    registry.check_admission(("hog", "g3"))  # a replacement always may
    for session in hog[:5]:
        registry.unregister(session)  # type: ignore[arg-type]
    registry.check_admission(("hog", "g9"))  # the load fell: admitted again


def test_every_shipped_policy_caps_a_school() -> None:
    policies = [json.loads(p.read_text()) for p in Path("config").glob("budget-policy.*.json")]
    maps = yaml.safe_load_all(Path("deploy/kubernetes/base/configmap.yaml").read_text())
    policies += [json.loads(v) for cm in maps for k, v in cm["data"].items() if k.endswith(".json")]
    shipped = [p for p in policies if "defaults" in p]
    assert len(shipped) >= 4
    for policy in shipped:
        assert policy["defaults"]["school"]["max_concurrent_streams"] >= 1


def _policy_with_cap(path: Path, cap: int) -> Path:
    policy = json.loads(Path("config/budget-policy.dev.json").read_text())
    policy["defaults"]["school"]["max_concurrent_streams"] = cap
    path.write_text(json.dumps(policy))
    return path


async def test_without_a_fleet_the_cap_holds_on_one_gateway(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = _policy_with_cap(tmp_path / "policy-cap.json", 2)
    server = await make_gateway(BUDGET_ENFORCEMENT_MODE="disabled", BUDGET_POLICY_PATH=path)
    streams = [await connect(server, token("s-7", f"g{n}")) for n in range(3)]
    kinds = [(await s.next())["type"] for s in streams]
    assert kinds == ["Begin", "Begin", "Error"]
    assert streams[2].messages[0]["code"] == "OVERLOADED"
    await streams[2].collect()
    assert streams[2].close_code == 1013
    for stream in streams:
        await stream.close()
