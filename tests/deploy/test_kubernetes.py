"""The Kubernetes manifests, rendered per overlay and validated offline.

Each overlay is rendered as kustomize would (its namespace, images, labels and JSON 6902
patches, applied with jsonpatch) and every object is validated against the Kubernetes
1.37 schemas with kubernetes-validate in strict mode (unknown fields refused). The
ServiceMonitor, a Prometheus Operator resource outside those schemas, is checked for
what the operator needs. Then what the gateway itself needs: probes on its real routes,
a grace period longer than the drain, Secrets for what is secret, /metrics never routed
publicly, and only configuration names the gateway knows.
"""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml

from gateway import jsonstrict
from gateway.budget.policy import Policy
from gateway.settings import Settings
from tests.support.helpers import GatewayServer
from tests.support.manifests import ROOT, load, render

VERSION = "1.37.0"
OVERLAYS = ("dev", "prod")


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_kubernetes(overlay: str) -> None:
    docs = render(ROOT / "overlays" / overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "ServiceMonitor",
            "Ingress",
        ]
    )
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics"
            continue
        kubernetes_validate.validate(doc, VERSION, strict=True)
    secret = load(ROOT / "secret.example.yaml")
    kubernetes_validate.validate(secret[0], VERSION, strict=True)


def test_validation_refuses_a_broken_manifest() -> None:
    """The check can fail: an unknown field and a wrong type are both refused."""
    deployment = _one(render(ROOT / "overlays" / "prod"), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "sixty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_manifests_fit_the_gateway(overlay: str) -> None:
    docs = render(ROOT / "overlays" / overlay)
    deployment = _one(docs, "Deployment")
    config = _named(docs, "ConfigMap", "stt-gateway")
    policy_map = _named(docs, "ConfigMap", "stt-gateway-policy")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    known = set(Settings.model_fields)
    env = {e["name"] for e in container["env"]}
    configured = {k for k in config["data"] if k.isupper()}
    runtime = {"TMPDIR"}  # read by Python itself: where request bodies are spooled
    assert env | configured <= known | runtime, (env | configured) - known
    secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"AUTH_JWT_SECRET", "AUDIT_HMAC_KEY", "OPENAI_API_KEY", "REDIS_URL"}
    optional = {
        e["name"]
        for e in container["env"]
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("optional")
    }
    # dev runs without a Secret (keys generated, embedded Redis); prod needs every key
    assert optional == (secrets if overlay == "dev" else set()), optional
    assert not configured & secrets
    drain = float(config["data"]["SHUTDOWN_GRACE_SECONDS"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + 10
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    hpa, pdb = _one(docs, "HorizontalPodAutoscaler"), _one(docs, "PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] or overlay == "dev"
    paths = [p["path"] for r in _one(docs, "Ingress")["spec"]["rules"] for p in r["http"]["paths"]]
    assert "/metrics" not in paths and "/api/v1/ready" not in paths
    routes = [
        (p["path"], p["pathType"])
        for r in _one(docs, "Ingress")["spec"]["rules"]
        for p in r["http"]["paths"]
    ]
    assert ("/", "Exact") in routes  # the home page, not everything below it
    # what the pages call is routed: a link's code is redeemed under /api/v1/tokens
    for needed in ("/api/v1/tokens", "/api/v1/tokens/redeem", "/classroom", "/static/app.css"):
        assert any(
            needed == path or (kind == "Prefix" and needed.startswith(path.rstrip("/") + "/"))
            for path, kind in routes
        ), needed
    mode = config["data"]["REDIS_MODE"]
    assert mode == ("sentinel" if overlay == "prod" else "standalone")
    # the environment's ConfigMap holds only variables; the policy is its own, mounted
    assert all(k.isupper() for k in config["data"]), sorted(config["data"])
    assert [c["configMapRef"]["name"] for c in container["envFrom"]] == ["stt-gateway"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "stt-gateway-policy"
    raw = policy_map["data"]["budget-policy.json"]
    policy = Policy.from_document(jsonstrict.loads(raw), "cm")
    assert policy.school("example-school").max_concurrent_streams == 40


async def test_every_routed_path_and_probe_answers(gateway: GatewayServer) -> None:
    """The probes and the ingress routes name paths the gateway serves."""
    deployment = _one(render(ROOT / "overlays" / "prod"), "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    async with aiohttp.ClientSession() as session:

        async def status_of(path: str) -> int:
            async with session.get(gateway.http + path) as response:
                return response.status

        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert await status_of(container[probe]["httpGet"]["path"]) == 200, probe
        ingress = _one(render(ROOT / "overlays" / "prod"), "Ingress")
        suffix = {
            "/api/v1/schools": "/s-1/budget",
            "/api/v1/budget": "/usage",
            "/static": "/app.css",
        }
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                route = path["path"] + suffix.get(path["path"], "")
                status = await status_of(route)
                assert status != 404, route


def test_the_release_workflow_builds_the_image_the_manifests_name() -> None:
    """Validated against the workflow schema; it builds this Dockerfile, after the suite,
    into the image and tag the overlays pin."""
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(
        (
            files("check_jsonschema") / "builtin_schemas" / "vendor" / "github-workflows.json"
        ).read_text()
    )
    workflow = yaml.safe_load(
        (ROOT.parents[1] / ".github" / "workflows" / "release.yml").read_text()
    )
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    jsonschema.validate(workflow, schema)
    assert workflow["on"]["push"]["tags"] == ["v*.*.*"]
    jobs = workflow["jobs"]
    assert any(".ci/run" in step.get("run", "") for step in jobs["test"]["steps"])
    assert jobs["image"]["needs"] == "test"
    [build] = [
        s for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/build-push")
    ]
    assert build["with"]["push"] is True and build["with"]["context"] == "."
    image = workflow["env"]["IMAGE"]
    base = _one(render(ROOT / "base"), "Deployment")
    assert base["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image}:latest"
    prod = yaml.safe_load((ROOT / "overlays" / "prod" / "kustomization.yaml").read_text())
    [pinned] = prod["images"]
    assert pinned["name"] == image
    tags = build["with"]["tags"]
    assert "${{ env.IMAGE }}:${{ steps.version.outputs.version }}" in tags
    # the version the tag names is the package's: v<version> builds what prod pins
    import tomllib

    version = tomllib.loads((ROOT.parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert pinned["newTag"] == version
