"""The Kubernetes manifests rendered per overlay, as kustomize would (the features they use)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    return doc["kind"] == target.get("kind", doc["kind"]) and doc["metadata"]["name"] == target.get(
        "name", doc["metadata"]["name"]
    )


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization in ``directory`` makes (the features these use)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kust.get("resources", []):
        path = (directory / resource).resolve()
        docs += render(path) if path.is_dir() else load(path)
    docs = copy.deepcopy(docs)
    for patch in kust.get("patches", []):
        ops = yaml.safe_load(patch["patch"])
        hits = [d for d in docs if _matches(d, patch["target"])]
        assert hits, f"patch target {patch['target']} matches nothing"
        for i, doc in enumerate(docs):
            if doc in hits:
                docs[i] = jsonpatch.apply_patch(doc, ops)
    for doc in docs:
        if "namespace" in kust:
            doc["metadata"]["namespace"] = kust["namespace"]
        for group in kust.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(group["pairs"])
        for image in kust.get("images", []):
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image['name']}:{image['newTag']}"
    return docs
