"""A pure-Python renderer for the subset of kustomize that deploy/k8s uses (offline, no kubectl).

Supported: ``resources`` (files and kustomization directories), ``namePrefix``/``nameSuffix``
(with the Deployment reference in a HorizontalPodAutoscaler's ``scaleTargetRef``), ``labels``
(``includeSelectors``, ``includeTemplates``), ``images`` (``newName``, ``newTag``, ``digest``)
and inline JSON 6902 ``patches`` (add / replace / remove) selected by ``target`` kind and
name. Anything else raises ``UnsupportedKustomization``, so a manifest that starts using more of
kustomize fails loudly here instead of rendering wrong. Output: a list of resource dicts,
compared with ``kubectl kustomize`` by the tests where kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namePrefix",
    "nameSuffix",
    "labels",
    "images",
    "patches",
}
SELECTOR_PATHS = {
    "Deployment": [("spec", "selector", "matchLabels")],
    "Service": [("spec", "selector")],
}
TEMPLATE_KINDS = {"Deployment"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def render(directory: str | Path) -> list[dict[str, Any]]:
    """Resources of the kustomization in ``directory``, transformed as kustomize would."""
    root = Path(directory)
    spec = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise UnsupportedKustomization(f"{root}: unsupported fields {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = root / entry
        if path.is_dir():
            resources.extend(render(path))
        else:
            resources.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in spec.get("patches", []):
        _patch(resources, patch, root)
    _rename(resources, spec.get("namePrefix", ""), spec.get("nameSuffix", ""))
    for group in spec.get("labels", []):
        _label(resources, group)
    for image in spec.get("images", []):
        _image(resources, image)
    return resources


def _rename(resources: list[dict[str, Any]], prefix: str, suffix: str) -> None:
    if not prefix and not suffix:
        return
    renamed = {}
    for res in resources:
        old = res["metadata"]["name"]
        res["metadata"]["name"] = f"{prefix}{old}{suffix}"
        renamed[(res["kind"], old)] = res["metadata"]["name"]
    for res in resources:
        if res["kind"] == "HorizontalPodAutoscaler":
            ref = res["spec"]["scaleTargetRef"]
            ref["name"] = renamed.get((ref["kind"], ref["name"]), ref["name"])


def _label(resources: list[dict[str, Any]], group: dict[str, Any]) -> None:
    pairs = {str(k): str(v) for k, v in group["pairs"].items()}
    selectors = bool(group.get("includeSelectors", False))
    templates = selectors or bool(group.get("includeTemplates", False))
    for res in resources:
        res["metadata"].setdefault("labels", {}).update(pairs)
        if selectors:
            for path in SELECTOR_PATHS.get(res["kind"], []):
                _dig(res, path).update(pairs)
        if templates and res["kind"] in TEMPLATE_KINDS:
            meta = res["spec"]["template"].setdefault("metadata", {})
            meta.setdefault("labels", {}).update(pairs)


def _dig(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        if obj.get(key) is None:
            obj[key] = {}
        obj = obj[key]
    return obj


def _image(resources: list[dict[str, Any]], image: dict[str, Any]) -> None:
    for res in resources:
        spec = res.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            else:
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name


def _patch(resources: list[dict[str, Any]], patch: dict[str, Any], root: Path) -> None:
    if set(patch) - {"target", "patch"} or "patch" not in patch:
        raise UnsupportedKustomization(f"{root}: only inline JSON 6902 patches with a target")
    ops = yaml.safe_load(patch["patch"])
    if not isinstance(ops, list):
        raise UnsupportedKustomization(f"{root}: strategic-merge patches are not supported")
    target = patch["target"]
    hits = [
        r
        for r in resources
        if r["kind"] == target.get("kind", r["kind"])
        and r["metadata"]["name"] == target.get("name", r["metadata"]["name"])
    ]
    if not hits:
        raise UnsupportedKustomization(f"{root}: patch target {target} matches no resource")
    for res in hits:
        for op in ops:
            _apply_op(res, op)


def _apply_op(doc: dict[str, Any], op: dict[str, Any]) -> None:
    keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
    parent: Any = doc
    for key in keys[:-1]:
        parent = parent[int(key)] if isinstance(parent, list) else parent[key]
    last = keys[-1]
    kind = op["op"]
    if kind not in ("add", "replace", "remove"):
        raise UnsupportedKustomization(f"JSON patch op '{kind}' is not supported")
    if isinstance(parent, list):
        if kind == "add":
            index = len(parent) if last == "-" else int(last)
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[int(last)] = copy.deepcopy(op["value"])
        else:
            del parent[int(last)]
    elif kind == "remove":
        del parent[last]
    else:
        if kind == "replace" and last not in parent:
            raise KeyError(f"JSON patch replace: '{op['path']}' does not exist")
        parent[last] = copy.deepcopy(op["value"])
