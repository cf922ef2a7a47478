"""The budget policy file: validation (fail closed) and the effective values.

The shape is checked by ``config/budget-policy.schema.json`` (unknown keys
are errors); the meaning by :func:`problems` (timezones exist, every model
named is priced, thresholds ascend, districts named by schools exist…).
Every problem is reported, not only the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator

from gateway import jsonstrict
from gateway.budget.pricing import MICRO, Pricing
from gateway.errors import PolicyError

#: Shipped in the package; in the source tree a link to ``config/budget-policy.schema.json``.
SCHEMA_PATH = Path(__file__).with_name("budget-policy.schema.json")


def to_micro(usd: float) -> int:
    return int((Decimal(str(usd)) * MICRO).to_integral_value())


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(_schema_text())
    return Draft202012Validator(schema)


def _schema_text() -> str:
    return SCHEMA_PATH.read_text()


def valid_timezone(name: object) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def problems(data: Any) -> list[str]:
    """Every problem with a policy document, as human-readable lines; empty when valid."""
    found = [f"{where}: not a finite number" for where in jsonstrict.non_finite_paths(data)]
    found += [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    if not isinstance(data, dict):
        return found
    try:
        _semantic_problems(data, found)
    except (KeyError, TypeError, AttributeError):
        pass  # the shape is wrong; the schema errors above say how
    return list(dict.fromkeys(found))


def _semantic_problems(data: dict[str, Any], found: list[str]) -> None:
    prices = data["pricing_usd_per_minute"]
    school_defaults = data["defaults"]["school"]
    _check_school("defaults/school", school_defaults, found)
    for district_id, district in data.get("districts", {}).items():
        if "timezone" in district and not valid_timezone(district["timezone"]):
            found.append(
                f"districts/{district_id}/timezone: unknown timezone {district['timezone']!r}"
            )
    for school_id, school in data.get("schools", {}).items():
        _check_school(f"schools/{school_id}", school, found)
        district = school.get("district_id")
        if district is not None and district not in data.get("districts", {}):
            found.append(
                f"schools/{school_id}/district_id: district {district!r} is not in districts"
            )
        cap = school.get("max_daily_limit_usd", school_defaults.get("max_daily_limit_usd"))
        if cap is not None and school.get("daily_limit_usd", 0) > cap:
            found.append(f"schools/{school_id}/daily_limit_usd: above max_daily_limit_usd")
    for model in data.get("models", {}):
        if model not in prices:
            found.append(f"models/{model}: model has no price in pricing_usd_per_minute")
    steps = data.get("downgrade", [])
    for i, step in enumerate(steps):
        if step["model"] not in prices:
            found.append(f"downgrade/{i}/model: model {step['model']!r} has no price")
    percents = [step["at_percent"] for step in steps]
    if percents != sorted(percents) or len(set(percents)) != len(percents):
        found.append("downgrade: steps must have strictly ascending at_percent")


def _check_school(where: str, school: Mapping[str, Any], found: list[str]) -> None:
    if "timezone" in school and not valid_timezone(school["timezone"]):
        found.append(f"{where}/timezone: unknown timezone {school['timezone']!r}")
    thresholds = school.get("alert_thresholds")
    if thresholds is not None and list(thresholds) != sorted(thresholds):
        found.append(f"{where}/alert_thresholds: must be ascending")
    cap = school.get("max_daily_limit_usd")
    if cap is not None and school.get("daily_limit_usd", 0) > cap:
        found.append(f"{where}/daily_limit_usd: above max_daily_limit_usd")


@dataclass(frozen=True, slots=True)
class SchoolBudget:
    """A school's effective budget settings (policy, then overrides)."""

    school_id: str
    daily_limit_micro: int
    timezone: str
    alert_thresholds: tuple[int, ...]
    max_daily_limit_micro: int | None
    district_id: str | None
    source: str = "policy"
    webhook_url: str | None = None
    #: Groups of the school that may stream at once, across every replica (None: no cap).
    max_concurrent_streams: int | None = None

    def with_overrides(self, overrides: Mapping[str, Any]) -> SchoolBudget:
        if not overrides:
            return self
        changes: dict[str, Any] = {}
        if "daily_limit_usd" in overrides:
            changes["daily_limit_micro"] = to_micro(float(overrides["daily_limit_usd"]))
            changes["source"] = "override"
        if "timezone" in overrides:
            changes["timezone"] = str(overrides["timezone"])
            changes["source"] = "override"
        if "alert_thresholds" in overrides:
            changes["alert_thresholds"] = tuple(int(t) for t in overrides["alert_thresholds"])
            changes["source"] = "override"
        if overrides.get("webhook_url"):
            changes["webhook_url"] = str(overrides["webhook_url"])
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class DistrictBudget:
    district_id: str
    daily_limit_micro: int | None
    timezone: str


@dataclass(frozen=True)
class Policy:
    path: str
    prices: Mapping[str, float]
    global_limit_micro: int | None
    school_defaults: Mapping[str, Any]
    districts: Mapping[str, Mapping[str, Any]]
    schools: Mapping[str, Mapping[str, Any]]
    model_limits_micro: Mapping[str, int]
    downgrade: tuple[tuple[float, str], ...]
    pricing: Pricing = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pricing", Pricing(self.prices))

    @classmethod
    def from_document(cls, data: Mapping[str, Any], path: str = "<memory>") -> Policy:
        found = problems(data)
        if found:
            raise PolicyError(path, found)
        return cls(
            path=path,
            prices=dict(data["pricing_usd_per_minute"]),
            global_limit_micro=(
                to_micro(data["global"]["daily_limit_usd"]) if "global" in data else None
            ),
            school_defaults=dict(data["defaults"]["school"]),
            districts={k: dict(v) for k, v in data.get("districts", {}).items()},
            schools={k: dict(v) for k, v in data.get("schools", {}).items()},
            model_limits_micro={
                m: to_micro(v["daily_limit_usd"]) for m, v in data.get("models", {}).items()
            },
            downgrade=tuple(
                (float(s["at_percent"]), str(s["model"])) for s in data.get("downgrade", [])
            ),
        )

    def school(self, school_id: str, district_claim: str | None = None) -> SchoolBudget:
        merged = {**self.school_defaults, **self.schools.get(school_id, {})}
        cap = merged.get("max_daily_limit_usd")
        return SchoolBudget(
            school_id=school_id,
            daily_limit_micro=to_micro(merged["daily_limit_usd"]),
            timezone=merged.get("timezone", "UTC"),
            alert_thresholds=tuple(merged.get("alert_thresholds", (50, 80, 100))),
            max_daily_limit_micro=to_micro(cap) if cap is not None else None,
            district_id=merged.get("district_id") or district_claim,
            max_concurrent_streams=merged.get("max_concurrent_streams"),
        )

    def district(self, district_id: str) -> DistrictBudget:
        entry = self.districts.get(district_id, {})
        limit = entry.get("daily_limit_usd")
        return DistrictBudget(
            district_id,
            to_micro(limit) if limit is not None else None,
            entry.get("timezone", "UTC"),
        )

    def downgraded_model(self, model: str, percent_used: float) -> str:
        """The model to use at ``percent_used``: the cheapest step reached, never dearer."""
        chosen = model
        for at_percent, step_model in self.downgrade:
            if percent_used >= at_percent and self.prices[step_model] <= self.prices[chosen]:
                chosen = step_model
        return chosen


def load_policy(path: Path) -> Policy:
    try:
        data = jsonstrict.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(str(path), ["file not found"]) from None
    except (OSError, ValueError) as exc:
        raise PolicyError(str(path), [f"not readable JSON: {exc}"]) from None
    return Policy.from_document(data, str(path))
