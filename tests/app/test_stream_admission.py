"""One school cannot take every slot: its cap, and a fair share once the process is busy."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.errors import Overloaded
from gateway.observability.metrics import Metrics
from gateway.stream.admission import Occupancy, fair_share, refusal
from gateway.stream.ending import Ending
from gateway.stream.pacing import PaceLimits
from gateway.stream.registry import SessionRegistry
from gateway.stream.saturation import Saturation, SaturationLimits
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import connect, eventually, http_json, open_stream, token


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


def _saturated_registry(capacity: int, max_sessions: int = 100) -> SessionRegistry:
    limits = SaturationLimits(
        enter_seconds=0.1, leave_seconds=0.03, hold_seconds=5.0, warmup_seconds=0
    )
    saturation = Saturation(limits)
    saturation.observe(0.5, -5.0, capacity)  # the signal, injected: it starts the clock,
    saturation.observe(0.5, 0.0, capacity)  # and five seconds of it saturate
    return SessionRegistry(max_sessions, Metrics(), saturation, rand=lambda: 0.5)


def test_a_saturated_process_refuses_new_streams_but_not_replacements() -> None:
    registry = _saturated_registry(capacity=1)
    registry.register(_Session("a", "g0"))  # type: ignore[arg-type]
    with pytest.raises(Overloaded, match="saturated") as refused:
        registry.check_admission(("b", "g0"))
    assert refused.value.retry_after == 7.5  # 5 s, jittered
    registry.check_admission(("a", "g0"))  # its replacement (or resume) adds no load
    refusals = registry._metrics.admission_refused
    assert refusals.labels(reason="saturated")._value.get() == 1
    assert refusals.labels(reason="max_sessions")._value.get() == 0


def test_near_saturation_the_registry_lets_new_streams_in_at_the_pace() -> None:
    """The lag between the bounds: not saturated, but new streams come in a few a second,
    each refusal a jittered OVERLOADED (admission closed for a second after it: readiness
    says saturated); replacements are not paced."""
    limits = SaturationLimits(enter_seconds=0.1, leave_seconds=0.03, warmup_seconds=0)
    saturation = Saturation(limits)
    saturation.observe(0.06, -5.0, 0)
    saturation.observe(0.06, 0.0, 0)  # five seconds of 60 ms
    clock = [100.0]
    registry = SessionRegistry(100, Metrics(), saturation, rand=lambda: 0.0, clock=lambda: clock[0])
    registry.check_admission(("a", "g0"))
    registry.register(_Session("a", "g0"))  # type: ignore[arg-type]
    with pytest.raises(Overloaded, match="near saturation") as refused:
        registry.check_admission(("a", "g1"))
    assert refused.value.retry_after == 5.0 and not saturation.saturated
    assert "2 a second" in str(refused.value)
    assert registry.admission_closed()  # refusing: readiness sends new streams elsewhere
    registry.check_admission(("a", "g0"))  # a replacement adds no load
    clock[0] += 0.5  # two a second at the least
    registry.check_admission(("a", "g1"))
    registry.check_admission(("a", "g1"), paced=False)  # after its claim: its place is taken
    refusals = registry._metrics.admission_refused
    assert refusals.labels(reason="saturated")._value.get() == 1
    assert registry.admission_closed()  # the refusal was half a second ago
    clock[0] += 0.6
    assert not registry.admission_closed()


def test_after_saturating_the_fair_share_is_of_what_the_process_served() -> None:
    """Saturated at 10 streams, it reopens: near those 10 (not near MAX_SESSIONS), a school
    past its fair share waits so that another school's group gets in."""
    registry = _saturated_registry(capacity=10)
    for now in range(1, 150):  # the load falls: the lag settles, and admission reopens
        registry.saturation.observe(0.001, now / 10, 9)
    assert not registry.saturation.saturated and registry.saturation.capacity == 10
    for n in range(8):
        registry.register(_Session("hog", f"g{n}"))  # type: ignore[arg-type]
    registry.register(_Session("other", "g0"))  # type: ignore[arg-type]
    with pytest.raises(Overloaded, match="fair share"):
        registry.check_admission(("hog", "g8"))
    registry.check_admission(("other", "g1"))
    refusals = registry._metrics.admission_refused
    assert refusals.labels(reason="school_cap")._value.get() == 1


async def test_a_saturated_gateway_refuses_in_time_and_reopens_by_itself(
    make_gateway: GatewayFactory,
) -> None:
    """The signal is pushed over the bound once: a new stream gets OVERLOADED with a
    jittered retry_after and 1013 right after the handshake, readiness says saturated,
    the stream already admitted goes on to its Termination; then the real loop's lag
    (small) brings admission back on its own."""
    server = await make_gateway(
        ADMISSION_LAG_MS=100, ADMISSION_REOPEN_LAG_MS=30, ADMISSION_HOLD_SECONDS=0.5
    )
    admitted = await open_stream(server, token("s-1", "g-0"))
    saturation = server.state.registry.saturation
    saturation.limits = dataclasses.replace(saturation.limits, warmup_seconds=0)
    start = asyncio.get_running_loop().time()
    for tick in range(40):  # two seconds of a 300 ms lag, as the loop would measure them
        saturation.observe(0.3, start + tick * 0.05, 1)
    assert saturation.saturated
    refused = await connect(server, token("s-2", "g-0"))
    error = await refused.next()
    assert error["type"] == "Error" and error["code"] == "OVERLOADED"
    assert 5.0 <= error["retry_after"] < 10.0
    await refused.collect()
    assert refused.close_code == 1013
    await refused.close()
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 503 and body["status"] == "saturated"
    assert body["checks"]["admission"]["status"] == "saturated"
    await admitted.send_audio(tone(440, 1.5))
    messages = await admitted.finish()
    assert [m for m in messages if m["type"] == "Termination"]
    assert not [m for m in messages if m["type"] == "Error"]
    await admitted.close()
    await eventually(lambda: not saturation.saturated, timeout=20)
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 200 and body["checks"]["admission"]["status"] == "open"
    again = await open_stream(server, token("s-2", "g-0"))
    assert again.messages[0]["type"] == "Begin"
    await again.close()
    metrics = server.state.metrics
    assert metrics.admission_refused.labels(reason="saturated")._value.get() == 1
    assert metrics.event_loop_lag._sum.get() > 0  # the loop's lag was measured meanwhile


async def test_near_saturation_a_stream_comes_in_once_through_the_whole_handshake(
    make_gateway: GatewayFactory,
) -> None:
    """Near saturation (the lag between the bounds), one new stream takes the one place in
    the pace and gets its Begin — its second look after the group's claim does not take
    another — and the stream right behind it is told to come back; readiness then says
    saturated, and so does ``stt_saturated``."""
    server = await make_gateway(ADMISSION_LAG_MS=100, ADMISSION_REOPEN_LAG_MS=30)
    saturation = server.state.registry.saturation
    # The lag injected, held there: the loop's own (small) measurements barely move it.
    limits = dataclasses.replace(saturation.limits, warmup_seconds=0, smoothing_seconds=1e9)
    saturation.limits = limits
    saturation.observe(0.0, asyncio.get_running_loop().time(), 0)
    saturation.lag = 0.06  # between the bounds: near, not saturated
    registry = server.state.registry
    registry.pace.limits = PaceLimits(share_per_second=0, min_per_second=0.01)
    registry._clock = lambda: 1000.0  # the pace's clock, held: no refill, no forgetting
    assert saturation.near(0) and not saturation.saturated
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert body["checks"]["admission"]["status"] == "open"
    first = await open_stream(server, token("s-1", "g-0"))
    assert first.messages[0]["type"] == "Begin"
    second = await connect(server, token("s-2", "g-0"))
    error = await second.next()
    assert error["code"] == "OVERLOADED" and "near saturation" in error["message"]
    await second.collect()
    assert second.close_code == 1013
    status, body = await http_json("GET", f"{server.http}/api/v1/ready")
    assert status == 503 and body["status"] == "saturated"  # refusing: go elsewhere
    assert not saturation.saturated
    await eventually(lambda: server.state.metrics.saturated._value.get() == 1)
    for stream in (first, second):
        await stream.close()


async def test_a_blocked_event_loop_is_measured_as_lag(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(ADMISSION_LAG_MS=100)
    lag = server.state.metrics.event_loop_lag
    before = _over(lag, 0.25)
    await asyncio.sleep(0.2)
    time.sleep(0.4)  # noqa: ASYNC251 — the loop does nothing else for 400 ms: its timer fires late
    await eventually(lambda: _over(lag, 0.25) > before)


def _over(histogram: Any, bound: float) -> float:
    """Observations above ``bound`` (a bucket edge)."""
    total = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                total = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == bound:
                under = sample.value
    return total - under
