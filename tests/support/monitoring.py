"""Helpers for the monitoring tests: dashboards, rule files, metric names in PromQL."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "prometheus" / "rules"
_METRIC = re.compile(r"\b((?:stt|http|process|python)_[a-z0-9_]+|stt:[a-z0-9_:]+|up)\b")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stt_dashboards", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text()) for p in sorted((DASHBOARDS / "grafana").glob("*.json"))
    }


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query of every panel."""
    out = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((name, panel["title"], target["expr"]))
    return out


def metric_names(expr: str) -> set[str]:
    return {m for m in _METRIC.findall(expr) if m not in ("http_request", "stt_gateway")}


def rule_groups() -> list[dict[str, Any]]:
    groups = []
    for path in sorted(RULES.glob("*.rules.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def recorded_names() -> set[str]:
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def alert_names() -> list[str]:
    return [r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r]


def exported_names(exposition: str) -> set[str]:
    """Every sample name in a Prometheus text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            family = line.split(" ")[2]  # declared, even before its first labelled sample
            names |= {family, *(family + s for s in ("_total", "_bucket", "_sum", "_count"))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's macros so Prometheus can evaluate a panel query."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
